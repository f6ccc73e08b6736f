"""Background work: launch, schedule, cancel, resume and watch jobs outside the caller. A job is a
training run (a sweep's trial is one too) or a generation job (`generation`); one scheduler, one
lock and one slot limit per device serve both kinds.

There is no daemon. The job folders are the state, and every entry point (launch, list, status,
cancel, a finishing job) calls `refresh()`, which under a file lock (a) marks jobs whose processes
vanished as `interrupted` and (b) starts queued jobs while the device has free slots.

The package, one concern per module:
- `scheduler`: `plan(statuses, devices)`, the pure decision of which queued jobs start on which
  GPUs, and `refresh()` around it;
- `launcher`: a started job's command (the trainer, torchrun, `launch(command=...)`, a
  generation), its environment and its detached supervisor process;
- `supervisor`: that `python -m lego_core.jobs worker RUN_DIR -- <job argv>` process (`supervise`):
  it runs the command, forwards SIGTERM, records the end and starts the next job;
- `generation`: generation jobs (LLM item fields), typed `job.kind: generation`;
- this module: the public API below. Which processes belong to a run is lego_core.core.process;
  the command line is lego_core.cli.jobs.

May import core, data, lm, bricks, evaluation, training and runs.
"""
from __future__ import annotations

import os
import re
import signal
import socket
from typing import Any

from lego_core import runs
from lego_core.core import devices
from lego_core.core.errors import RecipeError, RunError
from lego_core.core import process
from lego_core.core.process import TOKEN_ENV, live_pids, run_pids  # noqa: F401  (public API)
from lego_core.jobs.scheduler import (DEFAULT_CPU_SLOTS, DEFAULT_GPU_SLOTS, MAX_CONCURRENT_ENV, Devices,  # noqa: F401
                                      plan, refresh, scheduler_lock)
from lego_core.jobs import supervisor
from lego_core.jobs.supervisor import FINAL_LINE, supervise  # noqa: F401

RESUMABLE_STATES = ("interrupted", "cancelled", "failed", "pruned")

__all__ = ["launch", "cancel", "prune", "resume", "status", "list_runs", "delete", "logs", "refresh", "live_pids",
           "plan", "Devices", "supervise", "resolve_device", "TOKEN_ENV", "MAX_CONCURRENT_ENV", "FINAL_LINE",
           "DEFAULT_CPU_SLOTS", "DEFAULT_GPU_SLOTS", "RESUMABLE_STATES"]


def resolve_device(device: str, recipe_device: str = "auto") -> str:
    """The device a job is scheduled on: 'auto' defers to the recipe's device, then to
    `devices.resolve` (the one resolver); a device that is absent here is refused (RunError: it is
    the launch's choice, not the recipe's)."""
    try:
        devices.check_name(device, "device")
        chosen = recipe_device if device == "auto" else device
        return devices.resolve(chosen, "device" if device != "auto" else "training.device")
    except RecipeError as exc:
        raise RunError(str(exc)) from None


def _check_command(command: Any) -> list[str]:
    if (isinstance(command, (str, bytes)) or not isinstance(command, (list, tuple)) or not command
            or not all(isinstance(part, str) and part for part in command)):
        raise RunError(f"command must be a non-empty list of non-empty strings (an argv template with "
                       f"\"{{run_dir}}\" and \"{{resume}}\"), got {command!r}")
    return list(command)


def launch(recipe: Any, device: str = "auto", nproc: int = 1, nnodes: int = 1, node_rank: int = 0,
           rdzv_endpoint: str | None = None, root: str | os.PathLike | None = None,
           max_concurrent: int | None = None, overrides: dict | list[str] | None = None,
           command: list[str] | None = None) -> str:
    """Validate the recipe, create its run (queued) and start it when a slot is free; returns the id.

    A malformed recipe raises RecipeError before any folder or process exists. `command` replaces
    the trainer with another program: an argv template where "{run_dir}" (also inside a part) is the
    run folder and a "{resume}" part becomes "--resume" when the run continues from a checkpoint (or
    is dropped). It is kept in the run's status (`launch.command`), so a resume, and a supervisor that
    starts the run later, use it too. That program must record the run's end in its status, as
    `python -m lego_core train` does.
    """
    from lego_core.data import datasets
    from lego_core.bricks.recipe import Recipe

    loaded = Recipe.load(recipe, overrides)
    datasets.check(loaded.dataset.name, loaded.dataset.options)
    nproc, nnodes, node_rank = int(nproc), int(nnodes), int(node_rank)
    if nproc < 1 or nnodes < 1:
        raise RunError(f"nproc ({nproc}) and nnodes ({nnodes}) must be at least 1")
    if nnodes > 1 and not re.match(r"^\[?[\w.:-]+\]?:\d+$", str(rdzv_endpoint or "")):
        raise RunError("a multi-node run needs rdzv_endpoint as host:port of node 0 (e.g. 10.0.0.1:29500), "
                       "the same on every node")
    if not 0 <= node_rank < nnodes:
        raise RunError(f"node_rank {node_rank} must be between 0 and nnodes-1 ({nnodes - 1})")
    resolved = resolve_device(device, getattr(getattr(loaded, "training", None), "device", "auto"))
    if resolved.startswith("cuda"):
        count = devices.cuda_count()
        wanted = int(resolved.split(":")[1]) + 1 if ":" in resolved else nproc
        if ":" in resolved and nproc > 1:
            raise RunError(f"device {resolved} names one GPU; use device 'cuda' for nproc={nproc}")
        if count < wanted:
            raise RunError(f"device {resolved} with nproc={nproc} needs {wanted} CUDA GPU(s); "
                           f"this machine has {count}. Use device 'cpu' or fewer processes")
    Devices.here(cuda=False).limit(resolved, max_concurrent)  # a bad limit is refused before anything exists
    launch_info = {"device": resolved, "nproc": nproc, "nnodes": nnodes, "node_rank": node_rank,
                   "rdzv_endpoint": rdzv_endpoint, "resume": False}
    if command is not None:
        launch_info["command"] = _check_command(command)
    base = runs.runs_root(root)
    run = runs.create(loaded, root=base, job={"device": resolved, "nproc": nproc * nnodes, "launch": launch_info,
                                              "max_concurrent": max_concurrent, "queued_at": runs.now()})
    refresh(base)
    return run.id


def cancel(run_id: str, timeout: float = 10, root: str | os.PathLike | None = None, wait: bool = True) -> dict:
    """Stop a run: a queued one at once; a running one with SIGTERM (it checkpoints and stops), then
    SIGKILL after `timeout` seconds. Returns the final status (state `cancelled`).

    With `wait=False` (a UI button) it only sends SIGTERM and returns; the run's supervisor then
    escalates to SIGKILL itself after `timeout` seconds.
    """
    run = runs.open(run_id, root)
    base = run.path.parent
    with scheduler_lock(base):  # no refresh may start it while we decide
        status = run.status_for_action()
        state = status.get("state")
        if state == "queued" and not status.get("token"):
            return run.set_job_status(state="cancelled", ended=runs.now(), error=None)
        if state == "cancelled":
            return status
        if state not in runs.ACTIVE_STATES:
            raise RunError(f"run {run.id} is {state}; only queued or running runs can be cancelled")
        if status.get("host") not in (None, socket.gethostname()):
            raise RunError(f"run {run.id} runs on host {status['host']}; cancel it there")
        run.set_job_status(cancel_requested=True, cancel_timeout=float(timeout))
    pids = process.run_pids(status)
    if not pids:  # nothing provably the run's is alive: judge it gone, signal nothing
        return _mark_unproven(run, status)
    supervisor = status.get("supervisor_pid")
    if isinstance(supervisor, int) and supervisor in pids:
        process.signal_run(status, signal.SIGTERM, only=[supervisor])  # it forwards it: one signal per process
    else:
        process.signal_run(status, signal.SIGTERM)
    if not wait:
        return run.status()
    if not process.wait_gone(status, timeout):
        for _ in range(3):  # SIGKILL everything carrying the token (torchrun workers included)
            process.signal_run(status, signal.SIGKILL)
            if process.wait_gone(status, 5):
                break

    def finish(current: dict) -> dict | None:
        if current.get("token") != status.get("token") or current.get("state") not in runs.ACTIVE_STATES:
            return None  # the supervisor or trainer recorded the end (cancelled, or it had just finished)
        return {"state": "cancelled", "ended": runs.now(), "error": None}
    final = run.update_job_status(finish)
    refresh(base)
    return final


def _mark_unproven(run: runs.Run, status: dict) -> dict:
    """Cancel of a run none of whose recorded processes can be proven its own (gone, or a pid that
    now belongs to another process): record it `interrupted`, having signalled nothing."""
    others = process.unproven_pids(status)
    why = (f"its recorded process (pid {others[0]}) is not this run's (no run token, another start time); "
           "nothing was signalled" if others else "its processes had already exited")

    def change(current: dict) -> dict | None:
        if current.get("token") != status.get("token") or current.get("state") not in runs.ACTIVE_STATES:
            return None  # it recorded its own end meanwhile
        return {"state": "interrupted", "ended": runs.now(), "cancel_requested": False,
                "error": f"cancel found no live process of run {run.id}: {why}; resume it to continue"}
    final = run.update_job_status(change)
    refresh(run.path.parent)
    return final


def prune(run_id: str, timeout: float = 10, root: str | os.PathLike | None = None, note: str | None = None) -> dict:
    """Stop a run that a sweep judged unpromising: cancel it (SIGTERM: it checkpoints and stops;
    SIGKILL after `timeout`), then record the final state `pruned` (and `note`, why). A run that
    had already ended, or ended on its own before the cancel took hold, keeps the state it ended
    in. `resume` continues a pruned run like a cancelled one. Returns the final status."""
    run = runs.open(run_id, root)
    if run.status_for_action().get("state") not in runs.ACTIVE_STATES:
        return run.status()
    try:
        cancel(run.id, timeout=timeout, root=run.path.parent)
    except RunError:  # it ended between the look and the cancel: keep how it ended
        return run.status()

    def mark(current: dict) -> dict | None:
        if current.get("state") != "cancelled":
            return None
        return {"state": "pruned", "ended": current.get("ended") or runs.now(), "error": None, "note": note}
    return run.update_job_status(mark)


STOPPING_GRACE_S = 10.0  # how long resume waits for a just-stopped run's processes before refusing


def resume(run_id: str, root: str | os.PathLike | None = None) -> str:
    """Queue an interrupted, cancelled, failed or pruned run again; it continues from checkpoints/last.pt."""
    run = runs.open(run_id, root)
    base = run.path.parent
    process.wait_gone(run.status_for_action(), STOPPING_GRACE_S)  # a run cancelled a moment ago is still exiting
    with scheduler_lock(base):
        status = run.status_for_action()
        if status.get("state") not in RESUMABLE_STATES:
            raise RunError(f"run {run.id} is {status.get('state')}; only {', '.join(RESUMABLE_STATES)} runs "
                           "can be resumed")
        if process.run_pids(status):
            raise RunError(f"run {run.id} is still stopping (its processes have not exited); "
                           "try again in a few seconds")
        launch_info = dict(status.get("launch") or {"device": status.get("device") or "cpu",
                                                    "nproc": status.get("nproc") or 1})
        launch_info["resume"] = True
        run.set_job_status(state="queued", launch=launch_info, token=None, supervisor_pid=None, error=None,
                           started=None, ended=None, cancel_requested=False, exit_code=None,
                           queued_at=runs.now(), resumes=int(status.get("resumes") or 0) + 1)
    refresh(base)
    return run.id


def status(run_id: str, root: str | os.PathLike | None = None) -> dict:
    """A run's status after refreshing the scheduler (so a vanished process shows `interrupted`)."""
    run = runs.open(run_id, root)
    refresh(run.path.parent)
    return run.status()


def list_runs(root: str | os.PathLike | None = None) -> list[runs.Run]:
    """All runs, newest first, after refreshing the scheduler."""
    refresh(root)
    return runs.list(root)


def delete(run_id: str, root: str | os.PathLike | None = None) -> None:
    """Remove a run folder (refreshing first, so a vanished 'running' run can go); refuses live runs."""
    run = runs.open(run_id, root)
    refresh(run.path.parent)
    with scheduler_lock(run.path.parent):  # no refresh may start it while it is being removed
        runs.delete(run.path)


def logs(run_id: str, tail: int = 100, root: str | os.PathLike | None = None) -> str:
    """The last `tail` lines of a job's log.txt ('' before it has started)."""
    return supervisor.tail(runs.open(run_id, root).log_path, tail)

