"""Cold items: the protocol (no cold item reaches training in any form; the warm/cold split adds up
to the whole) and hybrid item vectors (an ID vector mixed into every content brick, never for cold
items, whose vectors are the content brick's own)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lego_core import runs
from lego_core.data import datasets
from lego_core.evaluation import evaluate as ev
from lego_core.evaluation import popularity
from lego_core.evaluation import metrics as metric_fns
from lego_core.explore import frames
from lego_core.data.batches import TrainingSamples
from lego_core.training.checkpoints import MemoryCheckpointer
from lego_core.data.cold import cold_impressions, with_cold_items
from lego_core.data.leave_last_out import split_log
from lego_core.core.errors import DataError
from lego_core.bricks.model import build, to_tensor
from lego_core.bricks import catalog
from lego_core.bricks.recipe import Recipe
from lego_core.training.train import Trainer
from lego_core.training.logs import MemoryLog
from test_app_viz import by_saved_tables


def click_log(n_items: int = 80, n_users: int = 60, clicks: int = 12, seed: int = 0):
    """A small leave-last-out dataset: titles from 4 topics, users clicking within a topic."""
    rng = np.random.default_rng(seed)
    topic = np.arange(n_items) % 4
    words = [["alpha", "beta", "gamma"], ["delta", "omega", "sigma"], ["red", "blue", "green"], ["cat", "dog", "owl"]]
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)],
                          "title": [" ".join(rng.choice(words[t], 2)) + f" {i}" for i, t in enumerate(topic)],
                          "category": [f"t{t}" for t in topic]})
    users, ids, times = [], [], []
    for u in range(n_users):
        liked = np.flatnonzero(topic == u % 4)
        for k, item in enumerate(rng.choice(liked, clicks, replace=False)):
            users.append(f"u{u}")
            ids.append(f"i{item}")
            times.append(1000 * u + k)
    return split_log("clicks", items, np.array(users), np.array(ids), np.array(times), negatives=19, seed=1,
                     text_fields=["title"], category_field="category")


@pytest.fixture(scope="module")
def cold_dataset():
    return with_cold_items(click_log(), 0.2)


def test_the_protocol_keeps_cold_items_out_of_training(cold_dataset):
    d = cold_dataset
    assert d.cold.sum() >= 16 and d.info["cold_train_impressions_dropped"] > 0
    train = d.splits["train"]
    assert not d.cold[train.items].any()  # no train impression clicks (or shows) a cold item
    samples = TrainingSamples(d, negatives=4, max_history=10)
    seen_in_histories = 0
    for step in range(-(-len(samples) // 16)):  # every batch of an epoch
        batch = samples.batch(samples.epoch_order(3, 0)[step * 16:(step + 1) * 16], 3, 0, step)
        assert not d.cold[batch.candidates].any()  # positives and sampled negatives
        assert not d.cold[batch.history[batch.history_mask]].any()  # histories as shown
        raw, raw_mask = d.gather_histories(batch.users, samples.history_end[samples.impression[
            samples.epoch_order(3, 0)[step * 16:(step + 1) * 16]]], 10)
        seen_in_histories += int(d.cold[raw[raw_mask]].sum())
    assert seen_in_histories > 0  # cold items were clicked earlier: the mask is what hides them


def test_valid_and_test_keep_their_impressions_and_the_split_adds_up(cold_dataset):
    plain = click_log()
    for split in ("valid", "test"):
        assert len(cold_dataset.splits[split]) == len(plain.splits[split])
    flags = cold_impressions(cold_dataset, "test")
    assert 0 < flags.sum() < len(flags)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=len(cold_dataset.splits["test"].items))
    parts = ev.metrics_by_part(cold_dataset, "test", scores)
    assert parts["warm"]["impressions"] + parts["cold"]["impressions"] == parts["all"]["impressions"] == len(flags)
    imps = cold_dataset.splits["test"]
    assert parts["all"]["auc"] == metric_fns.compute(imps.labels, scores, imps.group)["auc"]
    # the MRR of the whole is the impression-weighted mean of the parts' (a per-impression metric)
    weighted = (parts["warm"]["mrr"] * parts["warm"]["impressions"]
                + parts["cold"]["mrr"] * parts["cold"]["impressions"]) / len(flags)
    assert parts["all"]["mrr"] == pytest.approx(weighted)


def test_popularity_knows_nothing_of_cold_items(cold_dataset):
    pop = popularity.floor(cold_dataset)
    assert set(pop) == {"valid", "test", "test_warm", "test_cold"}
    assert pop["test_cold"]["auc"] < pop["test_warm"]["auc"]


def test_cold_items_are_seeded_and_validated():
    base = click_log()
    first, again = with_cold_items(base, 0.2), with_cold_items(base, 0.2)
    assert (first.cold == again.cold).all()
    natural = with_cold_items(base, 0.0)  # only items no train impression or train history shows
    assert len(natural.splits["train"]) == len(base.splits["train"])
    assert not natural.cold[base.splits["train"].items].any()
    for bad in ("many", -0.1, 0.95, True):
        with pytest.raises(DataError, match="cold_items"):
            with_cold_items(base, bad)
    with pytest.raises(DataError, match="leave-last-out"):
        datasets.load("synthetic", n_items=60, n_users=30, n_impressions=30, cold_items=0.1)
    with pytest.raises(DataError, match="cold_items"):
        datasets.check("synthetic", {"cold_items": 0.1})
    datasets.check("ml-100k", {"cold_items": 0.1})


def test_ml100k_with_ten_percent_cold_items():
    d = datasets.load("ml-100k", cold_items=0.1)
    assert d.info["cold_items"] == 0.1 and abs(d.cold.sum() - 168) <= 10
    assert not d.cold[d.splits["train"].items].any()
    assert 50 < cold_impressions(d, "test").sum() < 300


def _recipe(content: str, item_id: str, dim: int = 16) -> Recipe:
    return Recipe.from_dict({"name": "hybrid", "dataset": {"name": "clicks"}, "content": {"name": content},
                             "behavior": {"name": "pooling"}, "predictor": {"name": "dot"},
                             "training": {"dim": dim, "batch_size": 16, "epochs": 1, "max_history": 10,
                                          "max_length": 8, "glove": False, "negatives": 4, "lr": 1e-2,
                                          "item_id": item_id, "item_id_dropout": 0.3}})


WORD_AND_ID_BRICKS = [n for n, s in catalog("content").items() if s.needs[0] != "lm_tokens"]


@pytest.mark.parametrize("content", WORD_AND_ID_BRICKS)
@pytest.mark.parametrize("mode", ["add", "gate"])
def test_hybrid_vectors_with_every_content_brick(cold_dataset, content, mode):
    torch.manual_seed(0)
    recipe = _recipe(content, mode)
    trainer = Trainer(recipe, MemoryLog(), MemoryCheckpointer(), progress=False, dataset=cold_dataset)
    trainer.setup()
    model = trainer.model
    cold_ids = torch.as_tensor(np.flatnonzero(cold_dataset.cold))
    before = model.item_ids.ids.weight[cold_ids].detach().clone()
    order = trainer.samples.epoch_order(0, 0)
    for step in range(6):
        assert np.isfinite(trainer.train_step(trainer.samples.batch(order[step * 16:(step + 1) * 16], 0, 0, step)))
    assert torch.equal(model.item_ids.ids.weight[cold_ids], before)  # cold items get no ID updates
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.encode_items(cold_ids), _content(model, cold_ids))  # content alone
        warm = torch.as_tensor(np.flatnonzero(~cold_dataset.cold)[:8])
        assert not torch.allclose(model.encode_items(warm), _content(model, warm))  # warm ones mix their ID in
    cached = ev.evaluate(model, cold_dataset, "test", cached=True, parts=True)
    uncached = ev.evaluate(model, cold_dataset, "test", cached=False, parts=True)
    for part in ("all", "warm", "cold"):
        assert cached[part]["auc"] == pytest.approx(uncached[part]["auc"], abs=1e-6)


def _content(model, ids):
    saved, model.item_ids = model.item_ids, None
    try:
        return model.encode_items(ids)
    finally:
        model.item_ids = saved


def test_hybrid_with_a_language_model_brick(cold_dataset):
    recipe = _recipe("lm_encoder", "gate").with_overrides({"content.params.tuning": "frozen",
                                                           "content.params.layer_cache": False})
    model = build(recipe, cold_dataset)
    model.eval()
    cold_ids = torch.as_tensor(np.flatnonzero(cold_dataset.cold)[:6])
    with torch.no_grad():
        assert torch.allclose(model.encode_items(cold_ids), _content(model, cold_ids))
        logits = model(to_tensor(np.array([0, 1]), torch.device("cpu")),
                       torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool),
                       torch.as_tensor(np.array([[0, 1, 2], [3, 4, 5]])))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def test_runs_table_and_recommendations_show_warm_and_cold(cold_dataset):
    run = runs.create(_recipe("pooling", "add"))
    run.write_metrics({"test": {"auc": 0.7, "impressions": 20}, "test_warm": {"auc": 0.75, "impressions": 15},
                       "test_cold": {"auc": 0.55, "impressions": 5}})
    row = frames.run_row(run)
    assert {k: v for k, v in row.items() if k.startswith("test_")} == {
        "test_auc": 0.7, "test_warm_auc": 0.75, "test_cold_auc": 0.55, "test_cold_impressions": 5}
    rng = np.random.default_rng(0)
    run.save_embeddings(cold_dataset.items["item_id"].tolist(), rng.normal(size=(cold_dataset.num_items, 4)),
                        [str(u) for u in cold_dataset.users], rng.normal(size=(cold_dataset.num_users, 4)))
    user = cold_dataset.users[0]
    recs = frames.recommendations(run, cold_dataset, user, k=cold_dataset.num_items, exclude_history=False,
                               scorer=by_saved_tables)
    cold_ids = set(cold_dataset.items["item_id"][cold_dataset.cold])
    assert recs["cold"].tolist() == [item in cold_ids for item in recs["item_id"]] and recs["cold"].any()
