"""The Users page's recommendations are the model's own scores: for every predictor (DIN and DCN
included, which a dot product of the saved tables cannot reproduce) and at any catalogue size,
they equal what `evaluate` scores for the same (user, item) pairs."""
from __future__ import annotations

import os

import numpy as np
import pytest

from lego_core import runs
from lego_core.evaluation import evaluate as ev
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
    # the saved tables' dot product is another ranking for these predictors: the page does not use it
    user = dataset.users[imps.users[0]]
    dot = recommend.from_tables(run, user, k=dataset.num_items)
    model_scores = recommend.recommend(run, user, k=dataset.num_items)
    assert not np.allclose(np.sort(dot["score"].to_numpy()), np.sort(model_scores["score"].to_numpy()))


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
