"""First launch: with no runs the Training, Embeddings and Users pages offer a one-click quick start
that trains the default recipe briefly in the background; read-only apps offer none. The trainer is
swapped for a stand-in that writes an item table (test_jobs' `fake_by_default`), so a click's run
finishes in about a second."""
from __future__ import annotations

import sys
import time

import pytest

from lego_core import jobs, runs
from lego_core.explore.builder import DEFAULT_PRESET, QUICK, quick_start_recipe
from tests.test_app_pages import (PAGES, TINY, _navigation_mode, button, show, start, texts,  # noqa: F401
                                  wait_finished)
from tests.test_jobs import _kill_all, fake_by_default

EMPTY_PAGES = ["pages/training.py", "pages/embeddings.py", "pages/users.py"]
assert set(EMPTY_PAGES) <= set(PAGES)

FAKE_TRAINER = r'''
import os, sys, time
import numpy as np
from lego_core import runs
run = runs.open(sys.argv[1])
run.set_training_status(state="running", started=time.time(), progress=0.5)
time.sleep(float(os.environ.get("FAKE_SECONDS", "0")))
ids = [str(i) for i in range(5)]
run.save_embeddings(ids, np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
run.write_metrics({"test": {"auc": 0.5}})
run.set_training_status(state="succeeded", ended=time.time(), progress=1.0)
'''


@pytest.fixture
def fake_trainer(tmp_path, monkeypatch):
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    fake_by_default(monkeypatch, [sys.executable, str(script), "{run_dir}"])
    monkeypatch.delenv("LEGO_READ_ONLY", raising=False)
    yield
    _kill_all(runs.runs_root())


def test_quick_start_recipe_is_the_default_preset_made_short():
    recipe = quick_start_recipe("synthetic", TINY)
    assert recipe.name == f"quick-start-{DEFAULT_PRESET}"
    assert recipe.dataset.name == "synthetic" and dict(recipe.dataset.options) == TINY
    assert recipe.training.epochs == QUICK["training.epochs"] == 1
    assert recipe.training.max_steps_per_epoch == QUICK["training.max_steps_per_epoch"]
    assert recipe.content.name == runs_recipe_brick("content")


def runs_recipe_brick(kind: str) -> str:
    from lego_core.bricks.recipe import Recipe

    return getattr(Recipe.preset(DEFAULT_PRESET), kind).name


def test_empty_pages_offer_the_quick_start_and_a_click_trains_it(fake_trainer):
    at = start(dataset="synthetic", synthetic_options=TINY)
    for page in EMPTY_PAGES:
        show(at, page)
        assert [b for b in at.button if b.label == "Quick start"], page
    button(at, "Quick start").click().run()  # on the Users page
    assert not at.exception, [e.value for e in at.exception]
    launched = runs.list()
    assert len(launched) == 1
    recipe = launched[0].recipe()
    assert recipe.training.epochs == 1 and recipe.training.max_steps_per_epoch == QUICK["training.max_steps_per_epoch"]
    assert recipe.dataset.name == "synthetic"
    assert wait_finished(launched[0].id, timeout=60)["state"] == "succeeded"
    for page in EMPTY_PAGES:  # its results replace every empty state
        show(at, page)
        assert not [b for b in at.button if b.label == "Quick start"], page
    assert jobs.status(launched[0].id)["state"] == "succeeded"


def test_an_empty_page_follows_the_running_quick_start_until_it_ends(fake_trainer, monkeypatch):
    monkeypatch.setenv("FAKE_SECONDS", "4")
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/embeddings.py")
    button(at, "Quick start").click().run()
    [run] = runs.list()
    deadline = time.monotonic() + 30
    while runs.open(run.id).status().get("progress") != 0.5:  # the stand-in trainer is running
        assert time.monotonic() < deadline
        time.sleep(0.1)
    at.run()
    assert not at.exception
    assert f"Run {run.id} is running" in texts(at) and at.get("progress")
    assert not [b for b in at.button if b.label == "Quick start"]  # one quick start at a time
    assert wait_finished(run.id, timeout=60)["state"] == "succeeded"
    at.run()
    assert not at.exception and "is running" not in texts(at) and "No finished run" not in texts(at)


def test_read_only_app_offers_no_quick_start(monkeypatch):
    monkeypatch.setenv("LEGO_READ_ONLY", "1")
    at = start(dataset="synthetic", synthetic_options=TINY)
    for page in EMPTY_PAGES:
        show(at, page)
        assert not [b for b in at.button if b.label == "Quick start"], page
    assert runs.list() == []
