"""Generating an item field from the app (pages/_generate_field.py, lego_core.jobs.generation): a
preview of 5 items in-process with a tiny local LLM, then the whole field as a background job with
progress, cancel and a resume that generates only the rest; the field then joins the dataset's
items and the Builder's field choices.

The background job runs the real `python -m lego_core augment` under the job supervisor; the LLM
is swapped for a stub through the documented test hook $LEGO_AUGMENT_GENERATOR, so each batch takes
a set time and every answered prompt is counted."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lego_core.data import datasets
from lego_core.explore.builder import field_choices
from lego_core.jobs import generation as generation_jobs
from lego_core.lm import generation
from tests.test_app_pages import TINY, _navigation_mode, button, start, texts  # noqa: F401 (fixture)
from tests.test_jobs import _kill_all
from tests.test_lm_augment import tiny  # noqa: F401 (fixture: a tiny random Llama folder)

TEMPLATE = "Write about {title}."
STUB = r'''
import os, time
class Echo:
    """Answers each prompt with 'gen: <prompt>' after STUB_DELAY seconds a batch; logs batch sizes."""
    def __init__(self, model, max_new_tokens, system=None):
        self.delay = float(os.environ.get("STUB_DELAY", "0"))
    def __call__(self, prompts):
        time.sleep(self.delay)
        with open(os.environ["STUB_LOG"], "a") as log:
            log.write(f"{len(prompts)}\n")
        return [f"gen: {p}" for p in prompts]
'''


def _section(dataset_name: str = "synthetic") -> None:
    """The script AppTest runs: the section as pages/datasets.py calls it."""
    from pages._generate_field import render

    render(dataset_name)


def _app(**state) -> AppTest:
    at = AppTest.from_function(_section, default_timeout=120)
    at.session_state["dataset"] = "synthetic"
    at.session_state["synthetic_options"] = dict(TINY)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


@pytest.fixture
def stub(tmp_path, monkeypatch):
    """The stub LLM for this process and the background jobs (PYTHONPATH reaches the supervisor)."""
    folder = tmp_path / "stub"
    folder.mkdir()
    (folder / "stub_llm.py").write_text(STUB)
    log = tmp_path / "answered.log"
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    monkeypatch.setenv(generation.GENERATOR_ENV, "stub_llm:Echo")
    monkeypatch.setenv("STUB_LOG", str(log))
    monkeypatch.setenv("STUB_DELAY", "1")  # 15 batches of 8: the page has seconds to cancel mid-way
    monkeypatch.delenv("LEGO_READ_ONLY", raising=False)
    yield log
    _kill_all(generation_jobs.root())


def answered(log: Path) -> int:
    return sum(int(line) for line in log.read_text().split()) if log.exists() else 0


def wait_for(job_id: str, check, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = generation_jobs.generation_status(job_id)
        if check(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id}: {job}"
        time.sleep(0.2)


def test_preview_generates_five_items_with_a_tiny_llm(tiny, monkeypatch):  # noqa: F811
    monkeypatch.delenv(generation.GENERATOR_ENV, raising=False)
    monkeypatch.delenv("LEGO_READ_ONLY", raising=False)
    at = _app()
    assert not at.exception, [e.value for e in at.exception]
    at.text_input(key="gen-model").set_value(tiny)
    at.text_input(key="gen-field").set_value("blurb")
    at.text_area(key="gen-template").set_value(TEMPLATE)
    at.number_input(key="gen-max-tokens").set_value(4)
    button(at, "Preview 5 items").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rows = at.session_state["gen-preview"]["rows"]
    assert len(rows) == 5 and all(r["blurb"].strip() for r in rows)
    assert rows[0]["prompt"] == TEMPLATE.format(title=datasets.load("synthetic", **TINY).items["title"].iloc[0])
    assert at.dataframe[0].value.shape[0] == 5
    assert "blurb" not in datasets.load("synthetic", **TINY).items  # a preview saves no field


def test_generate_in_the_background_cancel_resume_then_builder_can_use_it(stub, monkeypatch):
    at = _app()
    at.text_input(key="gen-field").set_value("blurb")
    at.text_area(key="gen-template").set_value(TEMPLATE)
    button(at, f"Generate for all {TINY['n_items']:,} items").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [job] = generation_jobs.generation_jobs("synthetic")
    assert job["field"] == "blurb" and job["options"] == TINY and job["template"] == TEMPLATE

    # progress while it runs, then Cancel from the page: the answers so far stay stored
    job = wait_for(job["id"], lambda j: j["state"] == "running" and j["done"] >= 16)
    assert 0 < job["fraction"] < 1
    at.run()
    assert "running" in texts(at) and at.get("progress")
    button(at, "Cancel").click().run()
    job = wait_for(job["id"], lambda j: j["state"] == "cancelled")
    stopped_at = answered(stub)
    assert 16 <= stopped_at < TINY["n_items"]
    assert "blurb" not in datasets.load("synthetic", **TINY).items

    # Resume from the page: only the rest is generated
    at.run()
    assert "cancelled" in texts(at)
    monkeypatch.setenv("STUB_DELAY", "0")
    button(at, "Resume").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = wait_for(job["id"], lambda j: j["state"] == "succeeded")
    assert job["done"] == job["total"] == TINY["n_items"] and job["fraction"] == 1.0
    assert answered(stub) == TINY["n_items"]  # nothing generated twice

    loaded = datasets.load("synthetic", **TINY)
    assert loaded.items["blurb"].str.startswith("gen: Write about ").all()
    assert "blurb" in field_choices(loaded) and field_choices(loaded)[0] == "title"
    at.run()
    assert "succeeded" in texts(at) and not [b for b in at.button if b.label in ("Cancel", "Resume")]


def test_a_bad_request_is_one_line_and_starts_nothing(stub):
    at = _app()
    at.text_input(key="gen-field").set_value("title")  # an original column
    button(at, f"Generate for all {TINY['n_items']:,} items").click().run()
    assert "already an item column" in " ".join(e.value for e in at.error)
    at.text_input(key="gen-field").set_value("fine")
    at.text_area(key="gen-template").set_value("About {nope}")
    button(at, f"Generate for all {TINY['n_items']:,} items").click().run()
    assert "nope" in " ".join(e.value for e in at.error)
    button(at, "Preview 5 items").click().run()
    assert "nope" in " ".join(e.value for e in at.error)
    with pytest.raises(Exception, match="not allowed"):
        generation_jobs.launch_generation("synthetic", "bad name", TEMPLATE, options=TINY)
    assert generation_jobs.generation_jobs() == [] and answered(stub) == 0


def test_the_datasets_page_shows_the_section(monkeypatch):
    monkeypatch.delenv("LEGO_READ_ONLY", raising=False)
    at = start(dataset="synthetic", synthetic_options=TINY)
    assert not at.exception, [e.value for e in at.exception]
    assert "Generate a field with the LLM" in texts(at)
    assert [b for b in at.button if b.label == "Preview 5 items"]


def test_read_only_app_offers_no_generation(monkeypatch):
    monkeypatch.setenv("LEGO_READ_ONLY", "1")
    at = _app()
    assert not at.exception
    assert not [b for b in at.button if b.label.startswith(("Preview", "Generate"))]
    assert "switched off" in texts(at)


def test_a_training_run_and_a_generation_job_share_one_cpu_slot(stub, monkeypatch, tmp_path):
    """One scheduler for all background work: with one CPU slot, a generation job launched while a
    training run holds it waits queued, and starts only once the run has ended."""
    from lego_core import jobs, runs
    from lego_core.bricks.recipe import Recipe
    from tests.test_jobs import FAKE_TRAINER

    monkeypatch.setenv("LEGO_MAX_CONCURRENT", "1")
    monkeypatch.setenv("STUB_DELAY", "0")
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    run_id = jobs.launch(Recipe.preset("nrms"), device="cpu",
                         command=[sys.executable, str(script), "{run_dir}", "2", "obey", "2", "{resume}"])
    job_id = generation_jobs.launch_generation("synthetic", "blurb", TEMPLATE, options=TINY, device="cpu")
    assert runs.open(run_id).status()["state"] == "running"
    job = generation_jobs.generation_status(job_id)
    assert job["state"] == "queued"
    assert runs.list() == [runs.open(run_id)]  # a generation job is no run: the runs pages never see it
    job = wait_for(job_id, lambda j: j["state"] == "succeeded")
    run, generated = runs.open(run_id).status(), runs.open(job_id).status()
    assert run["state"] == "succeeded" and generated["kind"] == "generation" and run["kind"] == "training"
    assert generated["started"] >= run["ended"]  # one after the other
    assert answered(stub) == TINY["n_items"]
