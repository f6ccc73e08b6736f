"""The Leaderboard page and the Builder's Sweep mode through streamlit.testing's AppTest: the empty
page says what to do, a finished sweep is ranked with its runs one click away, the Sweep form
counts the trials before launch and launches a sweep."""
from __future__ import annotations

import sys

import pytest

from lego_core import runs
from tests.test_app_pages import _navigation_mode, button, show, start, texts  # noqa: F401 (fixture)
from tests.test_sweeps import FAKE_TRAINER, cache  # noqa: F401 (fixture)

TINY = {"n_items": 120, "n_users": 60, "n_topics": 4, "n_impressions": 60, "seed": 3}


@pytest.fixture
def finished_sweep(cache, tmp_path):
    """Two content bricks x two seeds on the stand-in trainer, run to the end."""
    from lego_core import sweeps

    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    return sweeps.run({"name": "page", "base": "nrms", "set": {"training.epochs": 2},
                       "slots": {"content": ["cnn", "attention"]}, "seeds": 2, "budget": {"trials": 4},
                       "sampler": "grid", "command": [sys.executable, str(script), "{run_dir}", "0.05", "{resume}"]},
                      poll=0.1, echo=False)


def test_the_leaderboard_without_sweeps_points_to_the_builder(cache):
    at = show(start(), "pages/leaderboard.py")
    assert at.title[0].value == "Leaderboard"
    assert any("Sweep" in i.value for i in at.info)


def test_the_leaderboard_ranks_a_sweep_and_opens_a_configurations_runs(finished_sweep):
    at = show(start(), "pages/leaderboard.py")
    assert at.selectbox(key="lb-sweep").value == finished_sweep
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["State"] == "finished" and metrics["Trials done"] == "4 of 4" and metrics["Pruned"] == "0"
    board = at.dataframe[0].value
    assert list(board["content"]) == ["attention", "cnn"] and list(board["rank"]) == [1, 2]
    assert list(board["seeds"]) == [2, 2] and board["95% interval"].str.fullmatch(r"0\.\d{4} – 0\.\d{4}").all()
    assert list(at.dataframe[0].value["± std"].str.fullmatch(r"\d\.\d{4}")) == [True, True]
    assert len(at.get("plotly_chart")) >= 3  # two Pareto plots, importance and/or parallel coordinates
    at.selectbox(key="lb-config").set_value(at.selectbox(key="lb-config").options[1]).run()
    assert not at.exception
    trials = at.dataframe[1].value
    assert len(trials) == 2 and set(trials["seed"]) == {2023, 2024}
    run_id = trials["run_id"].iloc[1]
    assert runs.open(run_id).recipe().content.name == "cnn"
    picker = [r for r in at.radio if r.label == "Run"][0]
    picker.set_value(run_id).run()
    assert not at.exception and at.session_state["select_run"] == run_id  # what the page link opens
    at = show(at, "pages/training.py")
    assert at.selectbox(key="training_run").value == run_id


def test_the_builder_sweep_mode_counts_trials_and_launches_a_sweep(cache, monkeypatch):
    from lego_core import sweeps

    started = []
    monkeypatch.setattr(sweeps, "start_background", lambda sweep_id, **kw: started.append(sweep_id) or 1)
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/builder.py")
    assert at.radio(key="builder-mode").value == "Single run" and button(at, "Launch")
    at.radio(key="builder-mode").set_value("Sweep").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.multiselect(key="sweep-content").set_value(["attention", "cnn"]).run()
    at.multiselect(key="sweep-vary").set_value(["training.lr"]).run()
    at.select_slider(key="sweep-range-training.lr").set_value((0.0001, 0.01)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    text = texts(at)
    assert "**12 trials**: 6 configurations of 6 possible × 2 seed(s)" in text  # 2 bricks x 3 lr x 2 seeds
    assert "Estimated time" in text
    at.multiselect(key="sweep-content").set_value([]).run()
    assert len(at.error) == 1 and "slots.content" in at.error[0].value
    at.multiselect(key="sweep-content").set_value(["attention", "cnn"]).run()
    button(at, "Launch sweep").click().run()
    assert not at.exception and any("Launched sweep" in s.value for s in at.success)
    sweep_id = at.session_state["last_sweep"]
    assert started == [sweep_id]
    study, spec = sweeps.load(sweep_id)
    assert spec.slots["content"] == ["attention", "cnn"] and spec.seeds == [2023, 2024]
    assert spec.params["training.lr"].log is True and spec.base["dataset"]["name"] == "synthetic"
    at = show(at, "pages/leaderboard.py")
    assert {m.label: m.value for m in at.metric}["State"] == "created"
    assert not button(at, "Resume sweep").disabled


def test_one_seed_shows_no_spread_as_a_dash_and_trials_say_succeeded_as_training_does(cache, tmp_path):
    from lego_core import sweeps

    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    sweeps.run({"name": "one-seed", "base": "nrms", "set": {"training.epochs": 1},
                "slots": {"content": ["cnn", "attention"]}, "seeds": 1, "budget": {"trials": 2},
                "sampler": "grid", "command": [sys.executable, str(script), "{run_dir}", "0.05", "{resume}"]},
               poll=0.1, echo=False)
    at = show(start(), "pages/leaderboard.py")
    board = at.dataframe[0].value
    assert list(board["seeds"]) == [1, 1]
    assert list(board["± std"]) == ["—", "—"] and list(board["95% interval"]) == ["—", "—"]  # not None
    assert {m.label: m.value for m in at.metric}["Trials done"] == "2 of 2"
    trials = at.dataframe[1].value
    assert set(trials["state"]) == {"succeeded"}  # the Training page's word, not Optuna's "complete"
