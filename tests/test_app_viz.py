"""lego_core.explore.frames: the data behind the app's plots and tables, on a hand-made dataset and run."""
import numpy as np
import pandas as pd
import pytest

from lego_core import runs
from lego_core.core import devices
from lego_core.explore import maps
from lego_core.explore import distributions, frames
from lego_core.data.schema import Dataset, Impressions


def _imps(ids, users, ends, cands, labels):
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in cands])]).astype(np.int64)
    return Impressions(np.asarray(ids, dtype=np.int64), np.asarray(users, dtype=np.int64),
                       np.zeros(len(ids), dtype=np.int64), np.asarray(ends, dtype=np.int64), offsets,
                       np.concatenate(cands).astype(np.int64), np.concatenate(labels).astype(np.int8))


@pytest.fixture
def dataset():
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d", "e", "f"],
                          "title": ["<b>Alpha</b>", "Beta", "Gamma", "Delta", "Eps", "Zeta"],
                          "category": ["x", "x", "y", "y", "z", "x"]})
    # user u0 clicked a, b, c (c is their test click); user u1 clicked d, e
    seq_offsets = np.array([0, 3, 5])
    seq_items = np.array([0, 1, 2, 3, 4])
    splits = {"train": _imps([1], [0], [1], [[1, 5]], [[1, 0]]),
              "valid": _imps([2], [1], [1], [[4, 0, 5]], [[1, 0, 0]]),
              "test": _imps([3, 4], [0, 1], [2, 2], [[2, 3, 5], [5, 0]], [[1, 0, 0], [0, 1]])}
    return Dataset("tiny", items, np.array(["u0", "u1"]), seq_offsets, seq_items, splits,
                   text_fields=["title"], category_field="category")


@pytest.fixture
def run(tmp_path, monkeypatch, dataset):
    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path / "cache"))
    recipe = {"name": "hand", "dataset": {"name": "tiny"}, "content": {"name": "cnn"},
              "behavior": {"name": "additive"}, "predictor": {"name": "dot"}}
    r = runs.create(recipe)
    rng = np.random.default_rng(0)
    items = rng.normal(size=(6, 8)).astype(np.float32)
    users = np.stack([items[2] * 3, items[0] * 3])  # u0 prefers c, u1 prefers a
    r.save_embeddings(list(dataset.items["item_id"]), items, ["u0", "u1"], users)
    r.write_metrics({"test": {"auc": 0.75, "mrr": 0.5, "gauc_skipped": 0}, "parameters": 1234, "train_seconds": 3.5,
                     "popularity": {"test": {"auc": 0.6, "mrr": 0.3, "gauc_skipped": 0}}})
    r.append("steps", {"epoch": 0, "step": 10, "global_step": 10, "loss": 1.2})
    r.append("epochs", {"epoch": 1, "loss": 1.1, "valid_auc": 0.7})
    r.set_training_status(state="succeeded", started=100.0, ended=110.0, progress=1.0)
    r.log_path.write_text("".join(f"line {i}\n" for i in range(100)) + "score test:  50%|#####     | 1/2\r")
    return r


def test_item_frame_and_category_counts(dataset):
    frame = frames.item_frame(dataset)
    assert frame["text"].tolist()[:2] == ["<b>Alpha</b>", "Beta"]
    assert frame["category"].tolist() == ["x", "x", "y", "y", "z", "x"]
    counts = frames.category_counts(dataset)
    assert counts.iloc[0].tolist() == ["x", 3]
    assert frames.plain("<b>Alpha</b> & co") == "&lt;b&gt;Alpha&lt;/b&gt; &amp; co"


def test_dataset_plot_data(dataset):
    assert frames.history_lengths(dataset)["history_length"].tolist() == [3, 2]
    assert distributions.history_length_counts(dataset)[["from", "to", "users"]].values.tolist() == [[2, 2, 1], [3, 3, 1]]
    sizes = distributions.impression_size_counts(dataset)
    assert (sizes["impressions"] * sizes["from"]).groupby(sizes["split"]).sum().to_dict() == \
        {"test": 5, "train": 2, "valid": 3}  # each bin holds one size here: impressions x size = candidates
    assert set(sizes["split"]) == {"train", "valid", "test"} and sizes["impressions"].sum() == 4
    users = frames.users_frame(dataset)
    assert users["test_impressions"].tolist() == [1, 1]
    imps = frames.impressions_frame(dataset, "test")
    assert imps["clicked"].tolist() == [["c"], ["a"]]
    assert imps["size"].tolist() == [3, 2]


def test_dataset_plot_bins_cover_every_value_in_at_most_the_asked_bins():
    from lego_core.data.readers.synthetic import generate

    dataset = generate(n_items=300, n_users=200, n_impressions=400, seed=3)
    lengths = distributions.history_length_counts(dataset, bins=7)
    assert len(lengths) <= 7 and lengths["users"].sum() == dataset.num_users
    assert lengths["from"].iloc[0] == np.diff(dataset.seq_offsets).min() <= np.diff(dataset.seq_offsets).max() <= lengths["to"].iloc[-1]
    sizes = distributions.impression_size_counts(dataset, bins=5)
    for split, imps in dataset.splits.items():
        assert sizes.loc[sizes["split"] == split, "impressions"].sum() == len(imps)
    assert distributions.history_length_counts(dataset, bins=7) is lengths  # counted once per dataset


def test_user_history_and_test_clicks(dataset):
    history = frames.user_history(dataset, "u0")
    assert history["item_id"].tolist() == ["a", "b"]  # before the test impression, oldest first
    assert history["position"].tolist() == [1, 2]
    assert frames.user_history(dataset, "u0", split=None)["item_id"].tolist() == ["a", "b", "c"]
    assert frames.test_clicks(dataset, "u0") == ["c"]
    assert frames.test_candidates(dataset, "u1") == ["f", "a"]
    assert frames.find_users(dataset, "1") == ["u1"]
    with pytest.raises(KeyError):
        frames.user_history(dataset, "nobody")


def by_saved_tables(run, user_id, k, exclude):
    """A scorer for a hand-made run (it has no model): the dot product of its saved tables."""
    item_ids, items = run.item_embeddings()
    user_ids, users = run.user_embeddings()
    scores = items @ users[user_ids.index(user_id)]
    order = [i for i in np.argsort(-scores, kind="stable") if item_ids[i] not in set(exclude or ())][:k]
    return pd.DataFrame({"item_id": [item_ids[i] for i in order], "score": scores[order],
                         "rank": np.arange(1, len(order) + 1)})


def test_recommendations_leave_out_history_and_flag_test_clicks(dataset, run):
    recs = frames.recommendations(run, dataset, "u0", k=3, scorer=by_saved_tables)
    assert recs.columns.tolist() == ["rank", "item_id", "score", "text", "category", "clicked_in_test", "cold"]
    assert "a" not in recs["item_id"].tolist() and "b" not in recs["item_id"].tolist()
    assert recs.iloc[0]["item_id"] == "c" and bool(recs.iloc[0]["clicked_in_test"])
    assert recs["rank"].tolist() == [1, 2, 3]
    assert recs["score"].is_monotonic_decreasing


def test_pca_map_and_highlight(dataset, run):
    frame = maps.embedding_map(run, dataset, "pca")
    assert len(frame) == 6 and frame[["x", "y"]].notna().all().all()
    assert frame.set_index("item_id").loc["c", "category"] == "y"
    marks = maps.highlight(frame, ["a", "b"], ["c"])
    assert marks.groupby("role")["item_id"].apply(list).to_dict() == {"history": ["a", "b"], "recommended": ["c"]}
    assert maps.embedding_map(run, dataset, "umap") is None  # not computed yet


def test_map_hover_labels_show_item_ids_as_text(dataset, run):
    ids = ["a", "<b>x</b>", "c", "d", "e", "f"]
    run.save_embeddings(ids, np.random.default_rng(2).normal(size=(6, 4)))
    shown = maps.hover_labels(maps.embedding_map(run, dataset, "pca")).set_index("item_id")
    assert shown.loc["<b>x</b>", "item"] == "&lt;b&gt;x&lt;/b&gt;"  # escaped; item_id stays the key
    assert shown.loc["a", "hover"] == "&lt;b&gt;Alpha&lt;/b&gt;" and shown.loc["a", "item"] == "a"


def test_umap_is_cached_by_run_and_params(tmp_path, monkeypatch):
    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path))
    vectors = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    params = {"n_neighbors": 60}  # more neighbours than points: the fast PCA fallback, same caching
    assert maps.cached_umap("r1", vectors, params) is None
    out = maps.start_umap("r1", vectors, params).result(timeout=60)
    assert out.shape == (40, 2)
    np.testing.assert_allclose(maps.cached_umap("r1", vectors, params), out)
    assert maps.cached_umap("r2", vectors, params) is None
    assert maps.cached_umap("r1", vectors, {"n_neighbors": 59}) is None
    assert maps.cached_umap("r1", vectors * 2, params) is None  # a new table is a new key
    assert (tmp_path / "umap").is_dir()


def test_runs_table_curves_and_log(run):
    table = frames.runs_table(runs.list())
    row = table.iloc[0]
    assert row["run_id"] == run.id and row["state"] == "succeeded"
    assert (row["content"], row["behavior"], row["predictor"], row["dataset"]) == ("cnn", "additive", "dot", "tiny")
    assert row["test_auc"] == 0.75 and "test_gauc_skipped" not in table
    assert row["parameters"] == 1234 and row["train_seconds"] == 3.5
    assert frames.metric_columns(table) == ["test_auc", "test_mrr"]
    steps, epochs = frames.curves(run)
    assert steps["loss"].tolist() == [1.2] and epochs["valid_auc"].tolist() == [0.7]
    tail = frames.log_tail(run, 3)
    assert tail.splitlines() == ["line 97", "line 98", "line 99"]  # without the progress bar
    assert "50%|" in frames.log_tail(run, 3, progress_bars=True)
    base = frames.baselines(runs.list())
    assert base.to_dict("records") == [{"run_id": "popularity · tiny", "dataset": "tiny", "test_auc": 0.6, "test_mrr": 0.3}]


def test_devices_always_offer_cpu():
    options = devices.choices()
    assert options[0] == {"label": "CPU", "device": "cpu", "nproc": 1}
    assert frames.human_count(1234567) == "1.2M" and frames.human_count(999) == "999"


@pytest.mark.slow
def test_real_umap_keeps_clusters_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(2, 16))
    vectors = np.concatenate([c + rng.normal(size=(40, 16)) for c in centres]).astype(np.float32)
    out = maps.umap_2d("r", vectors, {"n_neighbors": 10})
    assert out.shape == (80, 2)
    a, b = out[:40].mean(0), out[40:].mean(0)
    spread = max(out[:40].std(0).max(), out[40:].std(0).max())
    assert np.linalg.norm(a - b) > 2 * spread
    np.testing.assert_allclose(maps.cached_umap("r", vectors, {"n_neighbors": 10}), out)


def test_impression_stats(dataset):
    stats = distributions.impression_stats(dataset).set_index("split")
    assert stats.loc["test", "impressions"] == 2 and stats.loc["test", "mean size"] == 2.5
    assert stats.loc["train", "max size"] == 2 and stats.loc["valid", "clicks per impression"] == 1


def test_find_users_can_keep_only_users_with_test_impressions(dataset):
    dataset.splits["test"] = dataset.splits["test"].select(np.array([1]))  # only u1 keeps a test impression
    assert frames.find_users(dataset) == ["u0", "u1"]
    assert frames.find_users(dataset, split="test") == ["u1"]
    assert frames.find_users(dataset, "0", split="test") == []


def test_umap_store_holds_no_pickles(tmp_path, monkeypatch):
    """The UMAP store keeps raw bytes only: storing another type is refused and a pickled value
    planted by another writer is dropped and recomputed, never unpickled."""
    import diskcache

    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path))
    vectors = np.random.default_rng(2).normal(size=(10, 4)).astype(np.float32)
    params = {"n_neighbors": 60}
    with maps._store() as store, pytest.raises(TypeError, match="str, bytes or numbers"):
        store.set("x", np.zeros(3))
    with diskcache.Cache(str(tmp_path / "umap")) as plain:
        plain.set(maps.umap_key("r", vectors, params), np.zeros((10, 2), np.float32))  # pickled by diskcache
    with pytest.warns(UserWarning, match="pickled"):
        assert maps.cached_umap("r", vectors, params) is None
    out = maps.umap_2d("r", vectors, params)
    np.testing.assert_array_equal(maps.cached_umap("r", vectors, params), out)


def _split_run(name: str, cold_items: float | None, cold: dict) -> runs.Run:
    options = {} if cold_items is None else {"cold_items": cold_items}
    r = runs.create({"name": name, "dataset": {"name": "synthetic", "options": options}, "content": {"name": "cnn"},
                     "behavior": {"name": "additive"}, "predictor": {"name": "dot"}})
    r.write_metrics({"test": {"auc": 0.7, "mrr": 0.4, "impressions": 120.0},  # counts may arrive as floats
                     "test_warm": {"auc": 0.72, "mrr": 0.42, "impressions": 120.0 - cold["impressions"]},
                     "test_cold": cold})
    return r


def test_warm_cold_groups_each_runs_results_with_integer_counts_and_where_cold_items_come_from(run):
    held = _split_run("held", 0.1, {"auc": 0.55, "mrr": 0.3, "impressions": 16.0})
    first_seen = _split_run("first-seen", None, {"auc": 0.5, "mrr": 0.2, "impressions": 3.0})
    split = frames.warm_cold([held, first_seen, run])  # `run` has no warm/cold split: left out
    assert split["run_id"].tolist() == [held.id] * 3 + [first_seen.id] * 3
    assert split["part"].tolist() == ["all", "warm", "cold"] * 2
    assert split["impressions"].tolist() == [120, 104, 16, 120, 117, 3]
    assert split["impressions"].dtype.kind == "i"
    assert split["held_out"].tolist() == [0.1] * 3 + [0.0] * 3
    assert split.set_index(["run_id", "part"]).loc[(held.id, "cold"), "auc"] == 0.55
    bars = frames.warm_cold_bars(split, ["auc", "mrr"])
    assert len(bars) == 12 and set(bars["metric"]) == {"AUC", "MRR"}
    assert bars[(bars["run_id"] == first_seen.id) & (bars["part"] == "cold")]["label"].tolist() == \
        ["cold · 3 impressions"] * 2
    assert frames.metric_label("test_cold_mrr") == "MRR (cold items)"
    assert frames.metric_label("test_auc") == "AUC"
    assert frames.metric_label("test_cold_impressions") == "impressions (cold items)"
