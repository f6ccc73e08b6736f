"""Crashes at the worst moments: the trainer SIGKILLed mid-epoch, during evaluation, half-way
through a checkpoint write and during the embedding export, a full disk during a checkpoint write,
and the job supervisor SIGKILLed. Each time the run resumes (`python -m lego_core train --resume`,
or `jobs.resume`) to metrics identical to an uninterrupted run of the same recipe.

Faults are injected from here: a small script (FAULTS) patches one point of lego_core in its own
process (the N-th training step, the N-th `evaluate`, the N-th write of a checkpoint, the embedding
export), then runs `lego_core.cli.main.main(["train", "--run-dir", RUN])`. Nothing in lego_core knows.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lego_core import jobs, runs
from lego_core.core.paths import PROJECT_ROOT

# 2 epochs of 13 steps on a tiny synthetic dataset; every epoch improves (so both write best.pt)
RECIPE = {"dataset.name": "synthetic",
          "dataset.options": {"n_items": 200, "n_users": 100, "n_topics": 4, "history_len": 8,
                              "n_impressions": 200, "impression_size": 5, "title_len": 6, "seed": 1},
          "training.epochs": 2, "training.dim": 16, "training.batch_size": 32, "training.negatives": 2,
          "training.glove": False, "training.max_length": 8, "training.max_history": 8,
          "training.patience": 5, "training.eval_batch_size": 256, "training.log_every": 1,
          "training.amp": False, "training.seed": 7, "training.device": "cpu"}
STEPS_PER_EPOCH = 13
COMPARED = ("valid", "test", "popularity", "best_epoch", "parameters")  # not train_seconds

FAULTS = r'''
"""Train RUN_DIR with one fault: argv = POINT N RUN_DIR (see tests/test_faults.py)."""
import errno, os, signal, sys

point, nth, run_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
calls = 0


def due():
    global calls
    calls += 1
    return calls == nth


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def kill_before(owner, name):
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if due():
            die()
        return original(*args, **kwargs)
    setattr(owner, name, wrapper)


if point == "step":
    from lego_core.training import train
    kill_before(train, "loss_fn")
elif point == "evaluate":
    from lego_core.evaluation import evaluate
    kill_before(evaluate, "evaluate")
elif point == "embeddings":
    from lego_core import runs
    kill_before(runs.Run, "save_embeddings")
elif point.startswith(("kill-write:", "disk-full:")):
    # the N-th write of checkpoints/<name>.pt stops half-way: the process is killed, or the disk is full
    from lego_core.core import fileio
    kind, name = point.split(":")
    original, real_fdopen = fileio.atomic_write_bytes, os.fdopen

    class HalfWay:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def __getattr__(self, attr):
            return getattr(self.handle, attr)

        def write(self, data):
            view = memoryview(data).cast("B")
            self.handle.write(view[: len(view) // 2])
            self.handle.flush()
            if kind == "kill-write":
                die()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def atomic_write_bytes(path, data, *args, **kwargs):
        if os.path.basename(str(path)) == name + ".pt" and due():
            os.fdopen = lambda fd, *a, **k: HalfWay(real_fdopen(fd, *a, **k))
            try:
                return original(path, data, *args, **kwargs)
            finally:
                os.fdopen = real_fdopen
        return original(path, data, *args, **kwargs)
    fileio.atomic_write_bytes = atomic_write_bytes
elif point != "none":
    raise SystemExit(f"unknown fault point {point}")

from lego_core.cli.main import main

sys.exit(main(["train", "--run-dir", run_dir, "--quiet"]))
'''


def _recipe():
    from lego_core.bricks.recipe import Recipe

    return Recipe.preset("nrms").with_overrides(RECIPE)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A folder with the fault script and a shared cache; env for the training subprocesses."""
    base = tmp_path_factory.mktemp("faults")
    script = base / "faults.py"
    script.write_text(FAULTS)
    env = {k: v for k, v in os.environ.items() if k not in (jobs.TOKEN_ENV, "LEGO_MAX_CONCURRENT")}
    env.update(LEGO_CACHE_DIR=str(base / "cache"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p))
    return {"base": base, "script": script, "env": env, "runs": base / "runs"}


def _train(lab, run_id: str, point: str = "none", nth: int = 0) -> tuple[runs.Run, subprocess.CompletedProcess]:
    run = runs.create(_recipe(), root=lab["runs"], run_id=run_id)
    done = subprocess.run([sys.executable, str(lab["script"]), point, str(nth), str(run.path)], env=lab["env"],
                          cwd=str(PROJECT_ROOT), capture_output=True, text=True, timeout=300)
    return run, done


def _resume(lab, run: runs.Run) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lego_core", "train", "--run-dir", str(run.path), "--resume",
                           "--quiet"], env=lab["env"], cwd=str(PROJECT_ROOT), capture_output=True, text=True,
                          timeout=300)


def _scores(run: runs.Run) -> dict:
    metrics = json.loads(run.metrics_path.read_text())
    return {key: metrics[key] for key in COMPARED}


# point, N, what the folder holds after the crash (epochs checkpointed in last.pt, or None: no last.pt)
KILLS = {
    "mid-epoch-1-before-any-checkpoint": ("step", 5, None),
    "mid-epoch-2": ("step", STEPS_PER_EPOCH + 7, 1),
    "during-validation-of-epoch-2": ("evaluate", 2, 1),
    "during-final-test-evaluation": ("evaluate", 4, 2),
    "half-way-through-writing-last.pt": ("kill-write:last", 2, 1),
    "half-way-through-writing-best.pt": ("kill-write:best", 2, 1),
    "during-embedding-export": ("embeddings", 1, 2),
}
DISK_FULL = ("disk-full:last", 2)  # the write of last.pt after epoch 2 finds no space


@pytest.fixture(scope="module")
def crashes(lab):
    """Every faulty first attempt, queued at once to one background worker: while a test resumes one
    run (one core), the next crash is being prepared (on the other)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1)
    futures = {}
    for name, (point, nth, _) in KILLS.items():
        futures[name] = pool.submit(_train, lab, name, point, nth)
    futures["disk-full"] = pool.submit(_train, lab, "disk-full", *DISK_FULL)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def reference(lab):
    """Scores of the recipe trained without interruption, in a subprocess like every other run here."""
    run, done = _train(lab, "reference")
    assert done.returncode == 0, done.stderr
    assert json.loads(run.metrics_path.read_text())["best_epoch"] == 2  # so epoch 2 writes best.pt too
    return _scores(run)


def _assert_clean_finish(run: runs.Run, reference: dict) -> None:
    status = run.status()
    assert status["state"] == "succeeded" and not status.get("error"), status
    assert _scores(run) == reference  # exactly: every metric of valid and test
    assert [r["epoch"] for r in run.history("epochs")] == [1, 2]
    steps = [r["global_step"] for r in run.history("steps")]
    assert steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))  # each step logged once, none missing
    assert not list(run.checkpoint_path("last").parent.glob("*.tmp")), "a stray temp file was left"
    assert "weights_only=False" not in run.status_path.read_text() + run.log_path.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KILLS))
def test_trainer_killed_resumes_to_identical_metrics(crashes, reference, lab, name):
    from lego_core.training.checkpoints import read_checkpoint

    point, _, checkpointed = KILLS[name]
    run, done = crashes[name].result()
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])
    assert not run.metrics_path.exists()
    last = run.checkpoint_path("last")
    if checkpointed is None:
        assert not last.exists()
    else:  # the checkpoint from before the crash is intact, whatever the crash interrupted
        assert read_checkpoint(last, need=("model", "state"))["state"]["epoch"] == checkpointed
    if point.startswith("kill-write"):
        assert list(last.parent.glob("*.tmp")), "the fault should have left a half-written temp file"
    resumed = _resume(lab, run)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_clean_finish(run, reference)


@pytest.mark.slow
def test_disk_full_during_a_checkpoint_write_fails_cleanly_and_resumes(crashes, reference, lab):
    from lego_core.training.checkpoints import read_checkpoint

    run, done = crashes["disk-full"].result()
    assert done.returncode == 2, done.stderr[-2000:]
    error = done.stderr.strip()
    assert "\n" not in error and "last.pt" in error and os.strerror(errno.ENOSPC) in error
    assert "Traceback" not in done.stderr
    status = run.status()
    assert status["state"] == "failed" and "last.pt" in status["error"] and "free disk space" in status["error"]
    last = run.checkpoint_path("last")
    assert read_checkpoint(last, need=("state",))["state"]["epoch"] == 1  # epoch 1's checkpoint is usable
    assert not list(last.parent.glob("*.tmp"))
    resumed = _resume(lab, run)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_clean_finish(run, reference)


# ---- the job supervisor -------------------------------------------------------------------------
@pytest.fixture
def job_root(lab, monkeypatch):
    """Background jobs (jobs.launch) with the same environment as the subprocesses above."""
    for key in (jobs.TOKEN_ENV, "LEGO_MAX_CONCURRENT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LEGO_CACHE_DIR", lab["env"]["LEGO_CACHE_DIR"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    root = lab["base"] / f"jobs-{time.monotonic_ns()}"
    yield root
    scan = jobs.process.token_pids() or {}  # leave no process behind, whatever happened
    for run in runs.list(root) if root.exists() else []:
        for pid in scan.get(run.status().get("token") or "", []):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait_final(run: runs.Run, root: Path, timeout: float = 120.0) -> dict:
    """The run's status once it has ended and none of its processes is left."""
    deadline = time.monotonic() + timeout
    while True:
        status = jobs.status(run.id, root)
        if status["state"] in runs.FINAL_STATES and not jobs.run_pids(status):
            return runs.open(run.id, root).status()
        assert time.monotonic() < deadline, (status, jobs.logs(run.id, root=root))
        time.sleep(0.1)


def _wait_until(condition, run: runs.Run, root: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.status()["state"] in runs.ACTIVE_STATES, (run.status(), jobs.logs(run.id, root=root))
        assert time.monotonic() < deadline, jobs.logs(run.id, root=root)
        time.sleep(0.02)


def _finish(run: runs.Run, root: Path, reference: dict) -> dict:
    """Wait for the end; resume while it ended interrupted (at most twice); identical metrics."""
    status = _wait_final(run, root)
    for _ in range(2):
        if status["state"] == "succeeded":
            break
        assert status["state"] in jobs.RESUMABLE_STATES, (status, jobs.logs(run.id, root=root))
        jobs.resume(run.id, root=root)
        status = _wait_final(run, root)
    assert status["state"] == "succeeded", (status, jobs.logs(run.id, root=root))
    assert _scores(run) == reference
    assert [r["epoch"] for r in run.history("epochs")] == [1, 2]
    return status


def _kill(pid) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
def test_supervisor_killed_mid_epoch_leaves_the_training_to_finish(job_root, reference):
    run = runs.open(jobs.launch(_recipe(), device="cpu", root=job_root), job_root)
    _wait_until(lambda: any(r.get("epoch") == 1 for r in run.history("steps")), run, job_root)
    status = run.status()
    assert status["pid"] != status["supervisor_pid"]  # the trainer runs
    _kill(status["supervisor_pid"])
    _finish(run, job_root, reference)


@pytest.mark.slow
def test_supervisor_and_then_trainer_killed_is_interrupted_and_resumes(job_root, reference):
    run = runs.open(jobs.launch(_recipe(), device="cpu", root=job_root), job_root)
    _wait_until(lambda: any(r.get("epoch") == 1 for r in run.history("steps")), run, job_root)
    status = run.status()
    _kill(status["supervisor_pid"])  # nobody is left to record what happens to the trainer
    _kill(status["pid"])
    final = _wait_final(run, job_root)
    assert final["state"] == "interrupted" and "resume" in final["error"]
    _finish(run, job_root, reference)
    assert run.status()["resumes"] == 1 and run.status()["resumed_from_checkpoint"] is True


@pytest.mark.slow
def test_supervisor_killed_at_start_ends_resumable(job_root, reference):
    run = runs.open(jobs.launch(_recipe(), device="cpu", root=job_root), job_root)
    _kill(run.status()["supervisor_pid"])  # before or just after it started the trainer
    _finish(run, job_root, reference)
