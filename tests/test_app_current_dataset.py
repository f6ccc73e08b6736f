"""One current dataset (issue 21, points 2 and 3), through AppTest: every run picker lists the runs of
the sidebar's dataset (a toggle lists all), "Compare with" offers only runs on the first run's
dataset, a run asked for by id is shown whatever its dataset, and the sidebar's dataset, cold share
and synthetic sizes live in the address, so a browser reload keeps them."""
from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import app_test

from lego_core import runs
from lego_core.data import datasets
from lego_core.training import train
from test_app_datasets_add import _ml1m
from test_app_pages import APP, TINY, _NavigationPages, _navigation_mode, show, start  # noqa: F401 (autouse fixture)
from test_training import tiny_recipe

EVERY = "Runs of every dataset"


def _finished_stand_in(recipe):
    """A run that looks finished to the pickers (state, an item table) without training."""
    run = runs.create(recipe)
    (run.path / "embeddings").mkdir(parents=True, exist_ok=True)
    np.save(run.path / "embeddings" / "items.npy", np.zeros((TINY["n_items"], 4), dtype=np.float32))
    run.set_training_status(state="succeeded", progress=1.0)
    return run


@pytest.fixture(scope="module")
def on_two_datasets(tmp_path_factory):
    """A trained tiny run on synthetic, a stand-in on synthetic and a stand-in on ml-100k."""
    cache = tmp_path_factory.mktemp("current-dataset-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(cache))
        recipe = tiny_recipe("pooling", "pooling", "dot")
        trained = runs.create(recipe)
        train.run(recipe, trained, progress=False)
        twin = _finished_stand_in(recipe)
        other = _finished_stand_in(recipe.with_overrides({"dataset.name": "ml-100k", "dataset.options": {}}))
        yield {"cache": cache, "trained": trained.id, "twin": twin.id, "other": other.id}


@pytest.fixture
def two_datasets(on_two_datasets, monkeypatch):
    monkeypatch.setenv("LEGO_CACHE_DIR", str(on_two_datasets["cache"]))
    monkeypatch.setattr(app_test, "PagesManager", _NavigationPages)
    return on_two_datasets


def _ids(box) -> list[str]:
    """The run ids a run picker lists (its options read '<id> · <recipe summary>')."""
    return [option.split(" · ")[0] for option in box.options]


def _toggle(at):
    found = [t for t in at.toggle if t.label == EVERY]
    return found[0] if found else None


# ---- run pickers ------------------------------------------------------------------------------------
def test_training_lists_the_sidebar_datasets_runs_and_the_toggle_lists_every_run(two_datasets):
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/training.py")
    picker = at.selectbox(key="training_run")
    assert set(_ids(picker)) == {two_datasets["trained"], two_datasets["twin"]}  # not the ml-100k run
    assert _toggle(at).value is False
    _toggle(at).set_value(True).run()
    assert set(_ids(at.selectbox(key="training_run"))) == {two_datasets[k] for k in ("trained", "twin", "other")}
    at.sidebar.selectbox(key="dataset").set_value("ml-100k").run()  # the sidebar switches: its runs, toggle off
    assert not at.exception
    assert _ids(at.selectbox(key="training_run")) == [two_datasets["other"]]
    assert at.selectbox(key="training_run").value == two_datasets["other"] and _toggle(at).value is False


def test_experiments_shows_the_sidebar_datasets_runs_first(two_datasets):
    """Experiments' Dataset filter starts on the sidebar's dataset (clearing or adding widens it)."""
    at = show(start(dataset="ml-100k"), "pages/experiments.py")
    assert not at.exception
    assert at.multiselect(key="exp-datasets").value == ["ml-100k"]
    at.multiselect(key="exp-datasets").set_value(["ml-100k", "synthetic"]).run()
    assert not at.exception and at.multiselect(key="exp-datasets").value == ["ml-100k", "synthetic"]


def test_a_dataset_without_runs_says_so_and_the_toggle_still_lists_the_others(two_datasets, tmp_path):
    datasets.add(_ml1m(tmp_path / "ml-1m"), name="ml1m", format="ml-1m")
    at = show(start(dataset="ml1m"), "pages/users.py")
    assert not at.exception and not [s for s in at.selectbox if s.key == "users-run"]
    assert any("No finished run on ml1m yet; 3 on other datasets" in i.value for i in at.info)
    assert _toggle(at).value is False
    show(at, "pages/training.py")
    assert any("No run on ml1m yet; 3 on other datasets" in i.value for i in at.info)
    _toggle(at).set_value(True).run()
    assert not at.exception
    assert len(at.selectbox(key="training_run").options) == 3


def test_compare_with_offers_only_runs_on_the_first_runs_dataset(two_datasets):
    at = show(start(dataset="synthetic", synthetic_options=TINY, **{"users-run": two_datasets["trained"]}),
              "pages/users.py")
    assert not at.exception
    second = at.selectbox(key="users-run-2").options
    assert len(second) == 2 and second[0] == "(none)" and two_datasets["twin"] in second[1]
    _toggle(at).set_value(True).run()  # every dataset's runs as first pick, still one dataset to compare
    assert len(at.selectbox(key="users-run").options) == 3
    second = at.selectbox(key="users-run-2")
    assert len(second.options) == 2 and two_datasets["twin"] in second.options[1]
    assert not [o for o in second.options if two_datasets["other"] in o]
    assert not [w for w in at.warning if "not ml-100k" in w.value or "trained on" in w.value]


def test_a_run_asked_for_by_id_shows_whatever_its_dataset(two_datasets):
    at = start(dataset="synthetic", synthetic_options=TINY, select_run=two_datasets["other"])  # e.g. from a sweep
    show(at, "pages/training.py")
    assert at.selectbox(key="training_run").value == two_datasets["other"]
    assert _toggle(at).value is True
    _toggle(at).set_value(False).run()  # switched off: the pick gives way to this dataset's runs
    assert not at.exception
    assert at.selectbox(key="training_run").value in (two_datasets["trained"], two_datasets["twin"])


# ---- the address keeps the sidebar --------------------------------------------------------------------
def _reload(at):
    """A browser reload: a new session that starts from the same address."""
    again = app_test.AppTest.from_file(APP, default_timeout=120)
    again.query_params = dict(at.query_params)
    return again.run()


def test_a_reload_keeps_a_registered_datasets_cold_share(tmp_path):
    datasets.add(_ml1m(tmp_path / "ml-1m"), name="ml1m", format="ml-1m")
    at = start()
    at.sidebar.selectbox(key="dataset").set_value("ml1m").run()
    at.slider(key="cold-ml1m").set_value(10).run()  # offered: the declaration says leave-last-out
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.query_params == {"dataset": "ml1m", "cold": "10"}
    again = _reload(at)
    assert not again.exception and not again.error, [e.value for e in again.error]
    assert again.sidebar.selectbox(key="dataset").value == "ml1m"
    assert again.slider(key="cold-ml1m").value == 10
    assert any(e.label == "Cold items: 10%" for e in again.expander)
    show(again, "pages/builder.py")
    assert "cold_items: 0.1" in [c.value for c in again.code if "content:" in c.value][0]
    assert again.query_params == {"dataset": "ml1m", "cold": "10"}  # the page switch keeps the address


def test_a_reload_keeps_the_synthetic_sizes_and_drops_a_stale_cold_share():
    at = start()
    at.slider(key="cold-ml-100k").set_value(20).run()
    at.sidebar.selectbox(key="dataset").set_value("synthetic").run()
    at.number_input(key="synthetic-n_items").set_value(150).run()
    assert at.query_params == {"dataset": "synthetic", "items": "150", "users": "200", "impressions": "400"}
    again = _reload(at)
    assert again.sidebar.selectbox(key="dataset").value == "synthetic"
    assert again.number_input(key="synthetic-n_items").value == 150
    assert {m.label: m.value for m in again.metric}["Items"] == "150"


@pytest.mark.parametrize("query", [{"dataset": "no-such-set", "cold": "10"}, {"dataset": "ml-100k", "cold": "abc"},
                                   {"dataset": "ml-100k", "cold": "95"}, {"dataset": "synthetic", "items": "-3"}])
def test_an_address_with_unusable_values_falls_back_to_the_defaults(query):
    at = app_test.AppTest.from_file(APP, default_timeout=120)
    at.query_params = query
    at.run()
    assert not at.exception and not at.error
    name = at.sidebar.selectbox(key="dataset").value
    assert name == (query["dataset"] if query["dataset"] != "no-such-set" else "ml-100k")
    if name == "ml-100k":
        assert at.slider(key="cold-ml-100k").value == 0 and "cold" not in at.query_params
    else:
        assert at.number_input(key="synthetic-n_items").value == 300
