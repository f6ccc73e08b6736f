"""Explanations come from the model: an attention brick's own softmax weights (summing to 1 over the
history), DIN's candidate-dependent attention, poly's interests mixed per item; bricks without weights
say "nearest in item space". Padded history positions never appear."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lego_core import runs
from lego_core.explore import explain
from lego_core.runs import recommend
from lego_core.training import train
from lego_core.explore import frames
from lego_core.bricks.model import to_tensor
from tests.test_training import tiny_recipe


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run per behaviour/predictor pair, trained once for the module (DIN's with room for
    padding: a history longer than every user's)."""
    root = tmp_path_factory.mktemp("explain-runs")
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(tmp_path_factory.mktemp("explain-cache")))
        for behavior, predictor in (("additive", "dot"), ("pooling", "dot"), ("attention", "din"), ("poly", "miner")):
            recipe = tiny_recipe("pooling", behavior, predictor, max_history=64 if predictor == "din" else 10)
            run = runs.create(recipe, root=root)
            train.run(recipe, run, progress=False)
            out[behavior] = run
        yield out


def _user_and_items(run, k=5):
    found = recommend.scorer(run)
    lengths = found.test_ends
    row = int(np.argmax(lengths))  # the longest history: most to choose from
    user = found.dataset.users[row]
    items = frames.recommendations(run, found.dataset, user, k)["item_id"].tolist()
    return found, row, user, items


def test_additive_weights_are_the_bricks_softmax_and_sum_to_one(trained):
    run = trained["additive"]
    found, row, user, items = _user_and_items(run)
    max_history = found.model.recipe.training.max_history
    frame = explain.explain(run, found.dataset, user, items, k=max_history)
    assert frame.columns.tolist() == explain.COLUMNS
    assert set(frame["method"]) == {"additive attention"}
    hist, mask = found.dataset.gather_histories(np.array([row]), found.test_ends[[row]], max_history)
    with torch.no_grad():
        vectors = found.items[to_tensor(hist, found.items.device)]
        expected = found.model.behavior.attention.weights(vectors, to_tensor(mask, found.items.device))[0].numpy()
    by_item: dict[str, float] = {}
    for item, w in zip(hist[0][mask[0]], expected[mask[0]]):
        key = found.item_ids[item]
        by_item[key] = by_item.get(key, 0.0) + float(w)
    for item in items:
        part = frame[frame["item_id"] == item]
        assert dict(zip(part["history_item_id"], part["weight"])) == pytest.approx(by_item, abs=1e-6)
        assert part["weight"].sum() == pytest.approx(1.0, abs=1e-5)
        assert part["rank"].tolist() == list(range(1, len(part) + 1))
        assert part["weight"].is_monotonic_decreasing
    top = explain.explain(run, found.dataset, user, items, k=3)
    assert top.groupby("item_id").size().max() <= 3 and top["item_id"].drop_duplicates().tolist() == items


def test_pooling_says_nearest_in_item_space(trained):
    run = trained["pooling"]
    found, row, user, items = _user_and_items(run)
    frame = explain.explain(run, found.dataset, user, items, k=3)
    assert set(frame["method"]) == {explain.NEAREST}
    assert "not attention" in explain.describe(explain.NEAREST)
    first = frame[frame["item_id"] == items[0]]
    target = found.items[found.item_ids.index(items[0])]
    for hist_id, weight in zip(first["history_item_id"], first["weight"]):
        vector = found.items[found.item_ids.index(hist_id)]
        assert weight == pytest.approx(float(torch.nn.functional.cosine_similarity(target, vector, dim=0)), abs=1e-5)


def test_padding_never_appears_and_din_weights_depend_on_the_item(trained):
    run = trained["attention"]
    found = recommend.scorer(run)
    max_history = found.model.recipe.training.max_history
    short = [r for r in range(len(found.test_ends)) if 0 < found.test_ends[r] < max_history]
    assert short, "the tiny dataset should have users with short histories"
    row = short[0]
    user = found.dataset.users[row]
    history = set(found.item_ids[i] for i in found.dataset.history(row, found.test_ends[row]))
    items = frames.recommendations(run, found.dataset, user, 4, exclude_history=False)["item_id"].tolist()
    frame = explain.explain(run, found.dataset, user, items, k=max_history)
    assert set(frame["method"]) == {"din target attention"}
    assert set(frame["history_item_id"]) <= history  # padding (item 0 slots) never shows
    assert frame.groupby("item_id").size().max() == len(history)
    weights = frame.pivot(index="item_id", columns="history_item_id", values="weight")
    assert not np.allclose(weights.iloc[0], weights.iloc[1])  # target attention: per recommended item


def test_poly_mixes_interests_per_item_and_summary_is_compact(trained):
    run = trained["poly"]
    found, row, user, items = _user_and_items(run)
    frame = explain.explain(run, found.dataset, user, items, k=found.model.recipe.training.max_history)
    assert frame["method"].iloc[0].startswith("poly attention")
    assert frame.groupby("item_id")["weight"].sum().to_numpy() == pytest.approx(1.0, abs=1e-5)
    lines = explain.summary(explain.explain(run, found.dataset, user, items, k=2))
    assert lines["item_id"].tolist() == items and lines["because"].str.count("·").max() <= 1


def test_an_empty_history_and_unknown_items(trained):
    run = trained["additive"]
    found = recommend.scorer(run)
    empty = [r for r in range(len(found.test_ends)) if found.test_ends[r] == 0]
    if empty:
        assert explain.explain(run, found.dataset, found.dataset.users[empty[0]], found.item_ids[:2]).empty
    from lego_core.core.errors import RunError

    with pytest.raises(RunError, match="not in run"):
        explain.explain(run, found.dataset, found.dataset.users[0], ["no-such-item"])
