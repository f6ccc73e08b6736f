"""The Users page's recommendations are the model's own scores: for every predictor (DIN and DCN
included, which a dot product of the saved tables cannot reproduce) and at any catalogue size,
they equal what `evaluate` scores for the same (user, item) pairs. The item and user tables
training saved are used while they come from the run's best checkpoint (cached equals uncached),
and the model is loaded on the dataset the caller holds."""
from __future__ import annotations

import os

import numpy as np
import pytest

from lego_core import runs
from lego_core.evaluation import evaluate as ev
from lego_core.bricks.model import Legommender
from lego_core.data import datasets
from lego_core.runs import recommend
from lego_core.training import train
from lego_core.explore import frames
from lego_core.runs.loading import load_model
from tests.test_training import tiny_recipe


@pytest.mark.parametrize("behavior, predictor", [("attention", "din"), ("additive", "dcn")])
def test_users_page_scores_equal_evaluate_scores(tmp_path, behavior, predictor):
    recipe = tiny_recipe("pooling", behavior, predictor)
    run = runs.create(recipe, root=tmp_path)
    train.run(recipe, run, progress=False)
    model, dataset = load_model(run)
    scores = ev.score_split(model, dataset, "test")
    imps = dataset.splits["test"]
    ids = dataset.items["item_id"].astype(str).to_numpy()
    checked = 0
    for row in range(min(len(imps), 5)):
        user = dataset.users[imps.users[row]]
        first = np.flatnonzero(imps.users == imps.users[row])[0]
        if first != row:  # a later impression of the same user sees a longer history
            continue
        page = frames.recommendations(run, dataset, user, k=dataset.num_items, exclude_history=False)
        shown = dict(zip(page["item_id"], page["score"]))
        span = slice(imps.offsets[row], imps.offsets[row + 1])
        for item, expected in zip(ids[imps.items[span]], scores[span]):
            assert shown[item] == pytest.approx(expected, abs=1e-5)
            checked += 1
    assert checked >= 5


def test_scorer_reloads_after_a_new_best_checkpoint(tmp_path):
    recipe = tiny_recipe("pooling", "pooling", "dnn")
    run = runs.create(recipe, root=tmp_path)
    train.run(recipe, run, progress=False)
    user = load_model(run)[1].users[0]
    first = recommend.scorer(run)
    assert recommend.scorer(run) is first  # loaded once
    before = recommend.recommend(run, user, k=3)
    best = run.checkpoint_path("best")
    os.utime(best, ns=(best.stat().st_atime_ns, best.stat().st_mtime_ns + 10_000))
    assert recommend.scorer(run) is not first
    assert recommend.recommend(run, user, k=3).equals(before)


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """A finished tiny DIN run (its scores read the history vectors too) and no loaded models."""
    monkeypatch.setattr(recommend, "_MODELS", type(recommend._MODELS)())
    recipe = tiny_recipe("pooling", "attention", "din")
    run = runs.create(recipe, root=tmp_path)
    train.run(recipe, run, progress=False)
    return run


def _encoder_calls(monkeypatch) -> dict:
    calls = {"items": 0, "users": 0}
    for name, key in (("encode_items", "items"), ("encode_users", "users")):
        original = getattr(Legommender, name)

        def counted(self, *args, _original=original, _key=key, **kwargs):
            calls[_key] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(Legommender, name, counted)
    return calls


def _all_scores(run, users) -> np.ndarray:
    found = recommend.scorer(run)
    return np.stack([found.scores(u) for u in users])


def test_saved_tables_score_like_a_fresh_encoding_without_calling_the_encoders(trained, monkeypatch):
    users = load_model(trained)[1].users[:4]
    calls = _encoder_calls(monkeypatch)
    cached = _all_scores(trained, users)
    assert calls == {"items": 0, "users": 0}  # current tables: nothing is encoded again
    (trained.embeddings_dir / "source.json").unlink()  # no record of their checkpoint: recomputed
    recommend.forget()
    uncached = _all_scores(trained, users)
    assert calls["items"] > 0 and calls["users"] == len(users)
    np.testing.assert_allclose(cached, uncached, rtol=1e-5, atol=1e-6)


def test_tables_of_another_checkpoint_or_damaged_are_recomputed(trained, monkeypatch):
    users = load_model(trained)[1].users[:2]
    expected = _all_scores(trained, users)
    calls = _encoder_calls(monkeypatch)
    table = trained.embeddings_dir / "items.npy"
    stat = table.stat()
    table.write_bytes(b"\0" * stat.st_size)  # damaged in place: same size and time as recorded
    os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    recommend.forget()
    with pytest.warns(UserWarning, match="items.npy"):  # (a new Run: the old one keeps what it read)
        np.testing.assert_allclose(_all_scores(runs.Run(trained.path), users), expected, rtol=1e-5, atol=1e-6)
    assert calls["items"] > 0
    calls["items"] = 0
    best = trained.checkpoint_path("best")
    os.utime(best, ns=(best.stat().st_atime_ns, best.stat().st_mtime_ns + 10_000))  # a new best.pt
    np.testing.assert_allclose(_all_scores(trained, users), expected, rtol=1e-5, atol=1e-6)
    assert calls["items"] > 0


def test_the_model_is_loaded_on_the_dataset_the_caller_holds(trained, monkeypatch):
    held = load_model(trained)[1]
    user = held.users[0]

    def second_copy(*args, **kwargs):
        raise AssertionError("the run's dataset was loaded a second time")
    monkeypatch.setattr(datasets, "load", second_copy)
    found = recommend.scorer(trained, held)
    assert found.dataset is held and recommend.scorer(trained, held) is found
    page = frames.recommendations(trained, held, user, k=5, exclude_history=False)
    assert page["item_id"].tolist() == recommend.recommend(trained, user, k=5, dataset=held)["item_id"].tolist()
