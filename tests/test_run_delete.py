"""Deleting a run never removes a folder a live trainer is writing, whatever its status.json says
(issue: `delete` of a run whose status cannot be read removed a live run). A live trainer holds the
folder's training lock (shared flock, dropped by the kernel when the process dies)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lego_core import jobs, runs
from lego_core.core.errors import RunError
from lego_core.recipe import Recipe
from lego_core.training import train

ROOT = Path(__file__).resolve().parent.parent
HOLD = "import sys, time\nfrom lego_core import runs\nwith runs.open(sys.argv[1]).training_hold():\n" \
       "    print('holding', flush=True)\n    time.sleep(120)\n"


def _recipe() -> Recipe:
    return Recipe.preset("nrms").with_overrides({"dataset.name": "synthetic", "training.device": "cpu"})


@pytest.mark.parametrize("status", [b"{not json", b"", None])
def test_a_run_whose_status_cannot_be_read_is_not_deleted_while_its_trainer_lives(tmp_path, status):
    run = runs.create(_recipe(), root=tmp_path)
    if status is None:
        run.status_path.unlink(missing_ok=True)
    else:
        run.status_path.write_bytes(status)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run.path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert run.in_training()
        for delete in (runs.delete, jobs.delete):
            with pytest.raises(RunError, match="cancel it first"):
                delete(run.id, tmp_path)
            assert run.path.is_dir()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while run.in_training() and time.monotonic() < deadline:  # the kernel drops a killed holder's lock
        time.sleep(0.05)
    jobs.delete(run.id, tmp_path)
    assert not run.path.exists()


def test_train_run_holds_the_folder_while_it_trains(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(train, "_train_into", lambda recipe, run, resume, progress: seen.append(run.in_training()))
    run = runs.create(_recipe(), root=tmp_path)
    assert not run.in_training()
    train.run(_recipe(), run)
    assert seen == [True] and not run.in_training()
