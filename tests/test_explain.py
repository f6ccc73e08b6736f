"""Explanations depend on the recommended item: each click's contribution to *that item's* score.
Where the score is linear in the click vectors (mean pooling, additive attention or poly interests,
then dot or MINER) the exact decomposition weight_i x <click_i, item>, which sums to the score;
for every other model (NRMS self-attention, DIN, ...) occlusion, the score minus the score without
the click. Padded history positions never appear."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lego_core import runs
from lego_core.core.errors import RunError
from lego_core.explore import explain
from lego_core.runs import recommend
from lego_core.training import train
from lego_core.explore import frames
from lego_core.bricks.model import to_tensor
from tests.test_training import tiny_recipe

RUNS = {"additive": ("additive", "dot", {}), "pooling": ("pooling", "dot", {}), "poly": ("poly", "miner", {}),
        "nrms": ("attention", "dot", {"item_id": "add"}),  # the NRMS-like hybrid
        "din": ("attention", "din", {"max_history": 64})}  # room for padding: longer than every history


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run per behaviour/predictor pair, trained once for the module."""
    root = tmp_path_factory.mktemp("explain-runs")
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(tmp_path_factory.mktemp("explain-cache")))
        for name, (behavior, predictor, extra) in RUNS.items():
            recipe = tiny_recipe("pooling", behavior, predictor, **{"max_history": 10, **extra})
            run = runs.create(recipe, root=root)
            train.run(recipe, run, progress=False)
            out[name] = run
        yield out


def _user_and_items(run, k=5):
    """The user with the longest history (it spans several topics) and their top-k items."""
    found = recommend.scorer(run)
    row = int(np.argmax(found.test_ends))
    user = found.dataset.users[row]
    items = frames.recommendations(run, found.dataset, user, k)["item_id"].tolist()
    return found, row, user, items


def _one_item_per_topic(found, user) -> list[str]:
    """For each category the user clicked, the best-scored item of it they did not click."""
    history = frames.user_history(found.dataset, user)
    catalogue = frames.item_frame(found.dataset).drop_duplicates("item_id")
    scores = dict(zip(found.item_ids, found.scores(user)))
    fresh = catalogue[~catalogue["item_id"].isin(history["item_id"])].assign(score=lambda f: f["item_id"].map(scores))
    picked = fresh[fresh["category"].isin(history["category"])].sort_values("score", ascending=False)
    return picked.drop_duplicates("category")["item_id"].tolist()


@pytest.mark.parametrize("name", ["additive", "pooling", "poly"])
def test_exact_decomposition_sums_to_the_models_score(trained, name):
    run = trained[name]
    found, row, user, items = _user_and_items(run)
    frame = explain.explain(run, found.dataset, user, items, k=found.model.recipe.training.max_history)
    assert frame.columns.tolist() == explain.COLUMNS
    assert set(frame["method"]) == {explain.EXACT}
    scores = found.scores(user)
    max_history = found.model.recipe.training.max_history
    history = set(found.item_ids[i] for i in found.dataset.history(row, found.test_ends[row])[-max_history:])
    for item in items:
        part = frame[frame["item_id"] == item]
        assert set(part["history_item_id"]) == history  # every click the model reads, once
        assert part["contribution"].sum() == pytest.approx(scores[found.item_ids.index(item)], abs=1e-4)
        assert part["score"].iloc[0] == pytest.approx(scores[found.item_ids.index(item)], abs=1e-4)
        assert part["rank"].tolist() == list(range(1, len(part) + 1))
        assert part["contribution"].is_monotonic_decreasing


def test_pooling_contribution_is_the_clicks_share_of_the_dot_product(trained):
    run = trained["pooling"]
    found, row, user, items = _user_and_items(run)
    frame = explain.explain(run, found.dataset, user, items[:1], k=3)
    clicks = found.dataset.history(row, found.test_ends[row])[-found.model.recipe.training.max_history:]
    target = found.items[found.item_ids.index(items[0])]
    for hist_id, contribution in zip(frame["history_item_id"], frame["contribution"]):
        index = found.item_ids.index(hist_id)
        times = int((np.asarray(clicks) == index).sum())
        expected = times * float(found.items[index] @ target) / len(clicks)
        assert contribution == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("name", ["pooling", "nrms"])
def test_two_recommended_items_get_different_top_clicks(trained, name):
    """The issue's complaint: a per-user attention said the same three clicks for every item."""
    run = trained[name]
    found, _, user, _ = _user_and_items(run)
    items = _one_item_per_topic(found, user)
    assert len(items) >= 2, "the longest tiny history spans several topics"
    frame = explain.explain(run, found.dataset, user, items, k=3)
    tops = frame[frame["rank"] == 1].set_index("item_id")["history_item_id"]
    assert tops.nunique() > 1, tops.to_dict()
    lines = explain.summary(frame)["because"]
    assert lines.nunique() == len(items)


@pytest.mark.parametrize("name", ["nrms", "din"])
def test_occlusion_is_the_score_minus_the_score_without_the_click(trained, name):
    run = trained[name]
    found, row, user, items = _user_and_items(run, k=3)
    max_history = found.model.recipe.training.max_history
    frame = explain.explain(run, found.dataset, user, items, k=max_history)
    assert set(frame["method"]) == {explain.OCCLUSION}
    scores = found.scores(user)
    hist, mask = found.dataset.gather_histories(np.array([row]), found.test_ends[[row]], max_history)
    clicks = [int(i) for i in hist[0][mask[0]]]
    for item in items[:2]:
        part = frame[frame["item_id"] == item]
        assert part["score"].iloc[0] == pytest.approx(scores[found.item_ids.index(item)], abs=1e-4)
        removed = part["history_item_id"].iloc[0]
        rest = [i for i in clicks if found.item_ids[i] != removed]
        ids = np.zeros((1, max_history), dtype=np.int64)
        ids[0, :len(rest)] = rest
        with torch.no_grad():  # the model's own forward pass, items encoded from their content
            without = found.model(torch.tensor([row]), to_tensor(ids, found.items.device),
                                  torch.arange(max_history).unsqueeze(0) < len(rest),
                                  torch.tensor([[found.item_ids.index(item)]]))[0, 0].item()
        assert part["contribution"].iloc[0] == pytest.approx(part["score"].iloc[0] - without, abs=1e-4)


def test_occlusion_removes_every_click_of_an_item_and_keeps_the_order():
    hist = np.array([[5, 7, 5, 9, 0, 0]])
    mask = np.array([[True, True, True, True, False, False]])
    ids, keep = explain.without_each(hist, mask, np.array([5, 7, 9]))
    assert ids.tolist() == [[5, 7, 5, 9, 0, 0], [7, 9, 0, 0, 0, 0], [5, 5, 9, 0, 0, 0], [5, 7, 5, 0, 0, 0]]
    assert keep.sum(axis=1).tolist() == [4, 2, 3, 3]


def test_padding_never_appears_for_short_histories(trained):
    run = trained["din"]
    found = recommend.scorer(run)
    max_history = found.model.recipe.training.max_history
    short = [r for r in range(len(found.test_ends)) if 0 < found.test_ends[r] < max_history]
    assert short, "the tiny dataset should have users with short histories"
    row = short[0]
    user = found.dataset.users[row]
    history = set(found.item_ids[i] for i in found.dataset.history(row, found.test_ends[row]))
    items = frames.recommendations(run, found.dataset, user, 4, exclude_history=False)["item_id"].tolist()
    frame = explain.explain(run, found.dataset, user, items, k=max_history)
    assert set(frame["history_item_id"]) == history
    assert frame.groupby("item_id").size().max() == len(history)


def test_summary_lists_signed_contributions_and_the_methods_are_described(trained):
    run = trained["poly"]
    found, row, user, items = _user_and_items(run)
    lines = explain.summary(explain.explain(run, found.dataset, user, items, k=2))
    assert lines["item_id"].tolist() == items and lines["because"].str.count("·").max() <= 1
    assert lines["because"].str.contains(r"\([+-]\d\.\d\d\)").all()
    assert "add up to the item's score" in explain.describe(explain.EXACT)
    assert "removed from the history" in explain.describe(explain.OCCLUSION)


def test_an_empty_history_and_unknown_items(trained):
    run = trained["additive"]
    found = recommend.scorer(run)
    empty = [r for r in range(len(found.test_ends)) if found.test_ends[r] == 0]
    if empty:
        assert explain.explain(run, found.dataset, found.dataset.users[empty[0]], found.item_ids[:2]).empty
    with pytest.raises(RunError, match="not in run"):
        explain.explain(run, found.dataset, found.dataset.users[0], ["no-such-item"])
