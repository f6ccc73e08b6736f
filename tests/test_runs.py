"""The run store: atomic files, torn history lines, corrupt status, embedding tables, listing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from lego_core import runs
from lego_core.core import fileio
from lego_core.core.errors import RecipeError, RunError
from lego_core.core.paths import PROJECT_ROOT
from lego_core.runs.status import TrainingPart

RECIPE = {"name": "nrms", "content": {"name": "attention", "params": {}},
          "behavior": {"name": "attention", "params": {}}, "predictor": {"name": "dot", "params": {}}}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path / "cache"))


def test_create_stores_recipe_and_queued_status(tmp_path):
    run = runs.create(RECIPE)
    assert run.path.parent == tmp_path / "cache" / "runs"
    assert "-nrms-" in run.id and run.id[:8].isdigit()
    assert "attention" in run.recipe_text()
    status = run.status()
    assert status["state"] == "queued" and abs(status["created"] - time.time()) < 60
    recipe = run.recipe()
    name = recipe["name"] if isinstance(recipe, dict) else recipe.name
    assert name == "nrms"
    assert runs.open(run.id).path == run.path and runs.open(str(run.path)) == run


def test_create_accepts_yaml_text_objects_and_refuses_junk(tmp_path):
    class Fake:
        def to_yaml(self):
            return "name: custom\ncontent: {name: cnn}\nbehavior: {name: gru}\npredictor: {name: dnn}\n"

    run = runs.create(Fake())
    assert "cnn-gru-dnn" in run.id
    text_run = runs.create("name: x\ncontent: {name: a}\n", run_id="mine")
    assert text_run.id == "mine" and text_run.recipe_text().startswith("name: x")
    with pytest.raises(RunError, match="already exists"):
        runs.create(RECIPE, run_id="mine")
    with pytest.raises(RecipeError):
        runs.create("- just\n- a list\n")
    with pytest.raises(RecipeError):
        runs.create("key: [unclosed\n")
    with pytest.raises(RunError):
        runs.create(RECIPE, run_id="../escape")


def test_set_status_merges_and_writes_atomically(tmp_path, monkeypatch):
    run = runs.create(RECIPE)
    run.set_training_status(state="running", pid=123, progress=0.5)
    run.set_training_status(progress=0.75, epoch=2)
    status = run.status()
    assert (status["state"], status["pid"], status["progress"], status["epoch"]) == ("running", 123, 0.75, 2)
    with pytest.raises(ValueError):
        run.set_training_status(state="exploded")

    # a writer killed after writing half of the bytes leaves the old file intact (temp + rename)
    def dying_replace(src, dst):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(fileio.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        run.set_training_status(state="failed")
    monkeypatch.undo()
    assert run.status()["state"] == "running"
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_or_missing_status_is_unknown_not_a_crash(tmp_path):
    run = runs.create(RECIPE)
    run.status_path.write_text('{"state": "runn')
    status = run.status()
    assert status["state"] == "unknown" and "unreadable" in status["error"]
    assert not run.is_active()
    run.set_training_status(state="failed")  # a corrupt file is replaced by a clean one
    clean = run.status_model()
    assert clean.job is None and clean.training.model_dump(exclude={"changed"}) == {
        **TrainingPart().model_dump(exclude={"changed"}), "state": "failed"}
    run.status_path.write_text("[1, 2]")
    assert run.status()["state"] == "unknown"
    run.status_path.unlink()
    assert run.status()["state"] == "unknown" and "missing" in run.status()["error"]
    assert run in runs.list()


def test_history_skips_a_torn_last_line_and_recovers_on_append(tmp_path):
    run = runs.create(RECIPE)
    run.append("epochs", {"epoch": 1, "auc": np.float32(0.5)})
    run.append("epochs", {"epoch": 2, "auc": 0.6})
    with open(run.path / "epochs.jsonl", "ab") as handle:
        handle.write(b'{"epoch": 3, "au')  # writer killed mid-line
    assert [r["epoch"] for r in run.history("epochs")] == [1, 2]
    run.append("epochs", {"epoch": 3, "auc": 0.7})  # starts on a fresh line
    assert [r["epoch"] for r in run.history("epochs")] == [1, 2, 3]
    assert run.history("steps") == []
    run.rewrite_history("epochs", run.history("epochs")[:1])
    assert run.history("epochs") == [{"epoch": 1, "auc": 0.5}]
    with pytest.raises(ValueError):
        run.append("../x", {})


def test_history_lines_from_concurrent_writers_stay_whole(tmp_path):
    run = runs.create(RECIPE)
    code = ("import sys; from lego_core import runs; r = runs.open(sys.argv[1]);"
            "[r.append('steps', {'w': int(sys.argv[2]), 'i': i, 'pad': 'x' * 5000}) for i in range(200)]")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(run.path), str(w)], env=env) for w in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    records = run.history("steps")
    assert len(records) == 400
    assert sorted((r["w"], r["i"]) for r in records) == [(w, i) for w in range(2) for i in range(200)]


def test_metrics_checkpoints_and_log_paths(tmp_path):
    run = runs.create(RECIPE)
    assert run.metrics() == {}
    run.write_metrics({"test": {"auc": np.float64(0.71)}, "epochs": 2})
    assert run.metrics() == {"test": {"auc": 0.71}, "epochs": 2}
    assert run.checkpoint_path("last") == run.path / "checkpoints" / "last.pt"
    assert run.checkpoint_path("best").parent.is_dir()
    assert run.log_path == run.path / "log.txt"
    run.metrics_path.write_text("{broken")
    with pytest.raises(RunError, match="metrics.json"):
        run.metrics()


def test_embedding_tables_round_trip_and_are_reread_when_rewritten(tmp_path):
    run = runs.create(RECIPE)
    with pytest.raises(RunError, match="no item embeddings"):
        run.item_embeddings()
    items = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 2.0]], dtype=np.float32)
    users = np.array([[[1.0, 0.0], [0.0, 0.9]], [[0.0, -1.0], [2.0, 1.0]]], dtype=np.float32)  # [U, K, D]
    run.save_embeddings(["N1", "N2", "N3", "N4"], items, np.array([10, 20]), users)
    ids, table = run.item_embeddings()
    assert ids == ["N1", "N2", "N3", "N4"] and table.shape == (4, 2) and table.dtype == np.float32
    assert run.user_embeddings()[0] == [10, 20] and np.array_equal(run.user_embeddings()[1], users)
    run.save_embeddings(["N1", "N2", "N3", "N4"], items * 2, [10, 20], users)  # rewritten tables are reloaded
    assert np.array_equal(run.item_embeddings()[1], items * 2)
    assert not [p for p in run.embeddings_dir.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError):
        run.save_embeddings([1, 2], items)


def test_list_is_newest_first_and_delete_refuses_running(tmp_path):
    first = runs.create(RECIPE, created=time.time() - 30)
    second = runs.create(RECIPE)
    third = runs.create(RECIPE, created=time.time() + 30)
    (tmp_path / "cache" / "runs" / "not-a-run").mkdir()
    assert runs.list() == [third, second, first]
    third.set_training_status(state="running", pid=os.getpid())
    with pytest.raises(RunError, match="cancel it first"):
        runs.delete(third.id)
    runs.delete(second.id)
    assert runs.list() == [third, first]
    with pytest.raises(RunError, match="not found"):
        runs.open(second.id)
    with pytest.raises(RunError, match="not a run folder"):
        runs.open("not-a-run")
    other_root = tmp_path / "elsewhere"
    moved = runs.create(RECIPE, root=other_root)
    assert runs.list(other_root) == [moved] and runs.open(moved.id, root=other_root) == moved


def test_atomic_helpers_refuse_object_arrays(tmp_path):
    target = tmp_path / "a" / "b.npy"
    fileio.atomic_save_npy(target, np.arange(3))
    assert np.load(target).tolist() == [0, 1, 2]
    with pytest.raises(TypeError):
        fileio.atomic_save_npy(target, np.array([{"x": 1}], dtype=object))
    fileio.atomic_write_json(tmp_path / "x.json", {"v": np.int32(3), "a": np.ones(2)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"v": 3, "a": [1.0, 1.0]}
