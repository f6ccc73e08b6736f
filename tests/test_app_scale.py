"""The app at MIND-large scale, scaled down (bench/app_scale.py's core on a tiny MIND folder): a
registered MIND folder, a tiny NRMS trained on it and a sweep of stand-in runs; every page renders
without exception, a user is found by part of their id, their top-10 comes with an explanation per
item, the map holds a point for every item (WebGL), Experiments and Leaderboard list the sweep's
runs. The bench times the same steps at full size; here only what they return is checked."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lego_core.explore import frames, umap_fit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import app_scale  # noqa: E402

SIZES = dict(n_news=150, n_users=120, n_train=240, n_dev=80)
RUNS = 3


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    import streamlit as st

    from lego_core.data.readers.synthetic_mind import write_mind_folder

    st.cache_data.clear()  # a module fixture runs before conftest's per-test clearing: an earlier
    st.cache_resource.clear()  # test's dataset list or loaded dataset must not answer here
    cache = tmp_path_factory.mktemp("app-scale")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(cache))
        folder = write_mind_folder(cache / "mind", **SIZES, candidates=6, history=5, n_topics=4)
        made = app_scale.prepare(folder, runs=RUNS, steps=2)
        rows = {row["what"]: row for row in app_scale.measure(app_scale.NAME, made["run_id"], timeout=120, umap=False)}
        yield {"cache": cache, "rows": rows, **made}


def test_every_page_renders_and_each_interaction_returns_what_it_should(prepared):
    rows = prepared["rows"]  # app_scale.Timer raised on any page exception
    pages = ["Datasets (first page: loads the dataset)"] + [f"{p}: first render" for p in
             ("Builder", "Training", "Experiments", "Leaderboard", "Users", "Embeddings")]
    assert [r for r in pages if r not in rows] == []
    assert rows["Embeddings: first render"]["check"].startswith(f"{SIZES['n_news']:,} points, ")  # every item
    found, picked = rows["Users: search a user id"]["check"].split(", picked ")
    assert found == "1 match(es)" and picked.startswith("U")
    assert rows["Users: another user's top-10 + why"]["check"] == "10 recommendations, 10 explained"
    assert "Embeddings: highlight a user" in rows
    assert rows["Experiments: filter by text"]["check"] == "1 rows"  # one of the three stand-ins is cnn
    assert rows["Leaderboard: open a configuration"]["check"] == "1 runs"
    assert all(r["seconds"] > 0 and r["target"] > 0 for r in rows.values())


def test_finding_a_user_and_their_row_use_lookups_built_once(synthetic_dataset):
    users = frames.find_users(synthetic_dataset)
    assert users == synthetic_dataset.users.astype(str)[:200].tolist()
    last = str(synthetic_dataset.users[-1])
    assert last in frames.find_users(synthetic_dataset, last)
    assert frames.user_index(synthetic_dataset, last) == len(synthetic_dataset.users) - 1
    assert frames.user_ids(synthetic_dataset) is frames.user_ids(synthetic_dataset)  # held, not rebuilt
    assert frames.item_frame(synthetic_dataset) is frames.item_frame(synthetic_dataset)
    with pytest.raises(KeyError, match="no-such-user"):
        frames.user_index(synthetic_dataset, "no-such-user")


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "manhattan"])
def test_items_beyond_the_umap_sample_are_placed_among_their_nearest_sampled_items(metric):
    rng = np.random.default_rng(0)
    fitted = rng.normal(size=(50, 8)).astype(np.float32)
    positions = rng.normal(size=(50, 2)).astype(np.float32)
    placed = umap_fit.place(fitted[:5], fitted, positions, metric, k=1)  # a sampled item lands on itself
    np.testing.assert_allclose(placed, positions[:5], atol=1e-4)
    between = umap_fit.place(fitted[:1] * 1.0001, fitted, positions, metric, k=3)
    box = positions[np.argsort(((fitted - fitted[0]) ** 2).sum(1))[:3]] if metric != "cosine" else positions
    assert box.min(0)[0] - 1e-4 <= between[0, 0] <= box.max(0)[0] + 1e-4


def test_umap_fits_a_sample_of_a_large_table_and_places_every_other_item(monkeypatch):
    fitted_rows = []

    def fake_fit(arr, full):  # stands in for umap-learn: the sample's rows, to a line
        fitted_rows.append(len(arr))
        return np.stack([arr[:, 0], np.zeros(len(arr))], 1).astype(np.float32)

    monkeypatch.setattr(umap_fit, "_fit_umap", fake_fit)
    table = np.random.default_rng(1).normal(size=(500, 6)).astype(np.float32)
    out = umap_fit.fit(table, {"seed": 0, "metric": "euclidean"}, sample=100)
    assert fitted_rows == [100] and out.shape == (500, 2) and np.isfinite(out).all()
    assert umap_fit.fit(table[:80], {"seed": 0, "metric": "cosine"}, sample=100).shape == (80, 2)
    assert fitted_rows == [100, 80]  # a table within the sample is fitted whole


def test_a_large_map_is_drawn_with_webgl_traces_holding_every_item(prepared, monkeypatch):
    import json

    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    from lego_core.explore import maps

    monkeypatch.setenv("LEGO_CACHE_DIR", str(prepared["cache"]))
    monkeypatch.setattr(maps, "WEBGL_FROM", 50)  # the tiny map counts as large
    PagesManager.uses_pages_directory = False
    at = AppTest.from_file(app_scale.APP, default_timeout=120)
    at.session_state["dataset"], at.session_state["emb-method"] = app_scale.NAME, "PCA"
    at.run().switch_page("pages/embeddings.py").run()
    assert not at.exception, [e.value for e in at.exception]
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert {t["type"] for t in traces} == {"scattergl"} and len(traces) > 1  # one trace per category
    assert app_scale._figure_points(at) == SIZES["n_news"]
    assert traces[0]["customdata"][0][0].startswith("N")  # the item id first: what a selection reads
    at.selectbox(key="emb-colour").set_value("popularity").run()  # a colour scale: one trace
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert not at.exception and len(traces) == 1 and "colorscale" in traces[0]["marker"]
