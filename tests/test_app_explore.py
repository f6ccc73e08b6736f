"""Explore deeper, through AppTest on two tiny trained runs: the Users page explains each
recommendation and hands the explanation to the Embeddings map; two runs are compared on aligned
maps coloured by how much each item moved, with the neighbour overlap as a metric; an item is found
by name with its nearest neighbours; the map is coloured by any item column."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from streamlit.testing.v1 import app_test

from lego_core import runs
from lego_core.explore import explain
from lego_core.explore import maps
from lego_core.training import train
from tests.test_app_pages import TINY, _length, _navigation_mode, _NavigationPages, button, show, start  # noqa: F401
from tests.test_training import tiny_recipe


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two finished tiny runs on the same synthetic dataset: additive attention and mean pooling."""
    cache = tmp_path_factory.mktemp("explore-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(cache))
        made = {}
        for behavior in ("pooling", "additive"):
            recipe = tiny_recipe("pooling", behavior, "dot", dim=16)
            run = runs.create(recipe)
            train.run(recipe, run, progress=False)
            made[behavior] = run.id
        yield {"cache": cache, **made}


@pytest.fixture
def explore(two_runs, monkeypatch):
    monkeypatch.setenv("LEGO_CACHE_DIR", str(two_runs["cache"]))
    monkeypatch.setattr(app_test, "PagesManager", _NavigationPages)
    return two_runs


def _figures(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _trace_names(figure: dict) -> list:
    return [trace.get("name") for trace in figure["data"]]


def test_users_page_explains_each_recommendation_and_shows_it_on_the_map(explore):
    at = show(start(dataset="synthetic", synthetic_options=TINY, **{"users-run": explore["additive"]}), "pages/users.py")
    assert len(at.dataframe) == 3  # recommendations, history, test clicks: as before
    why = [m.value for m in at.markdown if m.value.startswith("1. ")]
    assert len(why) == 1 and why[0].count("\n") == 9  # one line per recommended item (top 10)
    lines = why[0].split("\n")
    assert all("←" in line and line.count("·") == 2 for line in lines)  # the top 3 clicks of each
    assert re.search(r"\([+-]\d\.\d\d\)", lines[0])  # signed contributions
    assert len({line.split("←")[1] for line in lines}) > 1  # not the same clicks for every item
    assert any(explain.EXACT in m.value for m in at.markdown)  # which method, said on the page
    assert any("add up to the item's score" in c.value for c in at.caption)
    user = at.selectbox(key="users-user").value
    button(at, "Show on the map").click().run()  # one click opens the map
    assert not at.exception
    sent = at.session_state[explain.MAP_STATE]
    assert sent["run_id"] == explore["additive"] and sent["user"] == str(user)
    assert {row["method"] for row in sent["rows"]} == {explain.EXACT}
    assert at.title[0].value == "Embeddings"
    show(at, "pages/embeddings.py")  # AppTest's next runs stay on the page it last switched to itself
    assert at.selectbox(key="emb-run").value == explore["additive"]  # the explained run opens
    assert any("Showing why user" in i.value for i in at.info)
    names = _trace_names(_figures(at)[0])
    assert {"why: recommended", "why: clicks behind", "why: click → item"} <= set(names)
    button(at, "Clear").click().run()
    assert explain.MAP_STATE not in at.session_state
    assert "why: recommended" not in _trace_names(_figures(at)[0])


def test_two_runs_are_aligned_and_coloured_by_moved_with_the_overlap_metric(explore):
    at = show(start(**{"emb-method": "PCA", "emb-run": explore["additive"]}), "pages/embeddings.py")
    at.selectbox(key="emb-run-2").set_value(explore["pooling"]).run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    overlap = float(metrics["Neighbour overlap"].rstrip("%"))
    assert 0 <= overlap < 100  # two behaviour bricks, two different item spaces
    assert metrics["Items compared"] == f"{TINY['n_items']:,} of {TINY['n_items']:,}"
    assert at.selectbox(key="emb-colour-2").value == "moved"
    figures = _figures(at)
    assert len(figures) == 2 and all("aligned" in f["layout"]["title"]["text"] for f in figures)
    for figure in figures:
        assert figure["layout"]["coloraxis"]["cmin"] == 0 and figure["layout"]["coloraxis"]["cmax"] == 1
        assert sum(_length(t.get("x", [])) for t in figure["data"]) == TINY["n_items"]
    assert figures[0]["layout"]["xaxis"]["range"] == figures[1]["layout"]["xaxis"]["range"]  # one frame of reference
    at.selectbox(key="emb-colour-2").set_value("category").run()
    assert len(_figures(at)[0]["data"]) == TINY["n_topics"]  # the aligned maps take any colour too


def test_find_an_item_by_name_and_list_its_neighbours(explore):
    at = show(start(**{"emb-method": "PCA", "emb-run": explore["additive"]}), "pages/embeddings.py")
    run = runs.open(explore["additive"])
    ids, _ = run.item_embeddings()
    from lego_core.data import datasets

    dataset = datasets.load("synthetic", **TINY)
    title = str(dataset.items["title"].iloc[5])
    word = title.split()[0]
    at.text_input(key="emb-find").set_value(word).run()
    options = at.selectbox(key="emb-item").options
    assert len(options) >= 2  # (none) + the matches
    at.selectbox(key="emb-item").set_value(str(dataset.items["item_id"].iloc[5])).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 10 and table["rank"].tolist() == list(range(1, 11))
    assert table["similarity"].is_monotonic_decreasing and str(ids[5]) not in table["item_id"].tolist()
    assert table["text"].str.len().min() > 0
    assert any("nearest to" in c.value for c in at.caption)
    assert {"found item", "its neighbours"} <= set(_trace_names(_figures(at)[0]))
    at.text_input(key="emb-find").set_value("no such title at all").run()
    assert any("No item text contains" in c.value for c in at.caption)


def test_colour_by_item_columns(explore):
    at = show(start(**{"emb-method": "PCA", "emb-run": explore["additive"]}), "pages/embeddings.py")
    colour = at.selectbox(key="emb-colour")
    assert colour.value == "category" and {"category", "popularity"} <= set(colour.options)
    categories = [t["name"] for t in _figures(at)[0]["data"]]
    assert len(categories) == TINY["n_topics"]  # one trace (one colour) per category
    colour.set_value("popularity").run()
    figure = _figures(at)[0]
    assert figure["layout"]["coloraxis"]["colorbar"]["title"]["text"] == "log10(1 + clicks)"
    assert not at.exception


def test_palette_has_a_colour_for_each_of_many_categories():
    genres = pd.Series([f"genre {i}" for i in range(19)] * 3)
    assert set(maps.group_categories(genres)) == set(genres)  # MovieLens' 19 genres: no "other"
    assert len(set(maps.PALETTE)) == len(maps.PALETTE) >= 70
    many = pd.Series([f"c{i}" for i in range(200)])
    grouped = maps.group_categories(many)
    assert grouped.nunique() == len(maps.PALETTE) and "other" in set(grouped)


def test_pages_load_a_runs_dataset_once_for_every_session_and_page(explore, monkeypatch):
    from lego_core.data import datasets
    from lego_core.runs import recommend

    monkeypatch.setattr(recommend, "_MODELS", type(recommend._MODELS)())
    loads, real = [], datasets.load
    monkeypatch.setattr(datasets, "load", lambda name, **kw: loads.append((name, kw)) or real(name, **kw))
    at = show(start(**{"users-run": explore["additive"]}), "pages/users.py")
    assert len(at.dataframe) == 3 and any(m.value.startswith("1. ") for m in at.markdown)  # scores, explanation
    other = show(start(**{"emb-method": "PCA", "emb-run": explore["additive"]}), "pages/embeddings.py")
    other.selectbox(key="emb-user").set_value(other.selectbox(key="emb-user").options[1]).run()
    assert not other.exception and "user recommended" in _trace_names(_figures(other)[0])
    run_dataset = ("synthetic", dict(runs.open(explore["additive"]).recipe().dataset.options))
    assert loads.count(run_dataset) == 1, loads  # the pages' copy; the run's model is loaded on it


def test_the_map_hover_shows_item_ids_escaped(explore):
    at = show(start(**{"emb-method": "PCA", "emb-run": explore["additive"]}), "pages/embeddings.py")
    items = _figures(at)[0]["data"][0]
    assert "item=%{customdata[1]}" in items["hovertemplate"] and "item_id" not in items["hovertemplate"]


def test_experiments_groups_all_warm_and_cold_with_counts_a_note_and_a_chart_per_run(tmp_path, monkeypatch):
    from tests.test_app_viz import _split_run

    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path))
    held = _split_run("held", 0.1, {"auc": 0.55, "mrr": 0.3, "impressions": 16.0})
    first_seen = _split_run("first-seen", None, {"auc": 0.5, "mrr": 0.2, "impressions": 3.0})
    for r in (held, first_seen):
        r.set_training_status(state="succeeded", progress=1.0)
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/experiments.py")
    main, split = at.dataframe[0].value, at.dataframe[1].value
    assert "test_auc" in main.columns and not [c for c in main.columns if "cold" in c or "warm" in c]
    assert split["part"].tolist() == ["all", "warm", "cold"] * 2
    assert split.set_index(["run_id", "part"]).loc[(held.id, "cold"), "impressions"] == 16
    assert split["impressions"].dtype.kind == "i"  # 116, not 116.0000
    notes = [i.value for i in at.info if "first seen in valid/test" in i.value]
    assert len(notes) == 1 and first_seen.id in notes[0] and "3 cold" in notes[0]
    chart = next(c for c in at.get("plotly_chart") if c.key == "warm-cold-chart")
    figure = json.loads(chart.proto.spec)
    assert {t["name"] for t in figure["data"]} == {"all", "warm", "cold"}
    panels = {a["text"] for a in figure["layout"]["annotations"]}
    assert panels == {held.id, first_seen.id}  # one panel per run, titled by its id
    assert "MRR (cold items)" in at.multiselect(key="exp-metrics").options  # words, not COLD_MRR


def test_a_search_selects_its_best_match_at_once_and_none_stays_none(explore):
    at = show(start(dataset="synthetic", synthetic_options=TINY, **{"emb-method": "PCA", "emb-run": explore["additive"]}),
              "pages/embeddings.py")
    from lego_core.data import datasets

    title = str(datasets.load("synthetic", **TINY).items["title"].iloc[5])
    at.text_input(key="emb-find").set_value(title).run()  # no need to open the Item dropdown
    best = at.selectbox(key="emb-item").options[1]
    assert at.selectbox(key="emb-item").value is not None and title[:20] in best
    assert any("nearest to" in c.value for c in at.caption) and len(at.dataframe[0].value) == 10
    at.selectbox(key="emb-item").set_value(None).run()  # the user clears it: the search does not undo that
    assert at.selectbox(key="emb-item").value is None and not any("nearest to" in c.value for c in at.caption)


def test_with_a_colour_bar_the_legend_sits_under_the_map(explore):
    at = show(start(dataset="synthetic", synthetic_options=TINY, **{"emb-method": "PCA", "emb-run": explore["additive"]}),
              "pages/embeddings.py")
    at.selectbox(key="emb-run-2").set_value(explore["pooling"]).run()
    at.selectbox(key="emb-user").set_value(at.selectbox(key="emb-user").options[1]).run()  # legend entries
    for figure in _figures(at):  # 'moved': a colour bar on the right edge
        assert "coloraxis" in figure["layout"] and figure["layout"]["legend"]["orientation"] == "h"
        assert figure["layout"]["legend"]["y"] < 0
    at.selectbox(key="emb-colour-2").set_value("category").run()
    assert "orientation" not in _figures(at)[0]["layout"]["legend"]  # categories: the legend is the key
