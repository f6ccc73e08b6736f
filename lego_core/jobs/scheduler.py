"""The one scheduler of all background work: which queued jobs start now, and on which GPUs.

A jobs folder (the runs root, `cache/runs` by default) holds every kind of job: training runs
(sweep trials are runs too) and generation jobs (`job.kind` "generation", lego_core.jobs.generation).
They share one lock (`<runs>/.lock`) and one slot limit per device: a queued job of either kind
waits for a slot that a job of the other kind holds.

`plan(statuses, devices)` is the whole decision, a pure function of the jobs' statuses and what
the machine offers (`Devices`: CUDA count and concurrent jobs per device). `refresh()` is the thin
part around it: under the lock it marks jobs whose processes vanished as `interrupted`, calls
`plan()` and starts what it says (`launcher.start`).
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from lego_core import runs
from lego_core.core import devices as lego_devices
from lego_core.core import process
from lego_core.core.errors import RunError
from lego_core.core.fileio import locked
from lego_core.jobs.launcher import start

MAX_CONCURRENT_ENV = "LEGO_MAX_CONCURRENT"
DEFAULT_CPU_SLOTS = 2
DEFAULT_GPU_SLOTS = 1  # runs per GPU
Start = tuple[str, list[int] | None]  # (run id, GPUs it gets: None off CUDA)


@dataclass(frozen=True)
class Devices:
    """What a machine offers the scheduler.

    `cuda_count`: CUDA GPUs visible. `max_concurrent`: runs at once on every device (per GPU for
    CUDA), as given ($LEGO_MAX_CONCURRENT: checked when used); None for `defaults` (by device kind,
    1 for kinds not listed). A run's own `max_concurrent` overrides both.
    """
    cuda_count: int = 0
    max_concurrent: Any = None
    defaults: Mapping[str, int] = field(default_factory=lambda: {"cpu": DEFAULT_CPU_SLOTS,
                                                                  "cuda": DEFAULT_GPU_SLOTS})

    @classmethod
    def here(cls, cuda: bool = True) -> Devices:
        """This machine (its GPUs counted only when `cuda`: that imports torch)."""
        return cls(cuda_count=lego_devices.cuda_count() if cuda else 0,
                   max_concurrent=os.environ.get(MAX_CONCURRENT_ENV) or None)

    def limit(self, device: str, explicit: int | None = None) -> int:
        """Concurrent runs allowed on `device` (per GPU for CUDA): `explicit` > `max_concurrent` > default."""
        if explicit is not None:
            value, source = explicit, "max_concurrent"
        elif self.max_concurrent is not None:
            value, source = self.max_concurrent, f"${MAX_CONCURRENT_ENV}"
        else:
            return self.defaults.get(_kind(device), 1)
        try:
            value = int(value)
        except (TypeError, ValueError):
            value = 0
        if value < 1:
            raise RunError(f"{source} must be a whole number >= 1 (got {value!r})")
        return value


def _kind(device: str | None) -> str:
    return (device or "cpu").split(":")[0]


def _started(status: Mapping) -> bool:
    """Started by a scheduler and not ended as far as recorded (it holds a slot)."""
    return status.get("state") == "running" or (status.get("state") == "queued" and bool(status.get("token")))


def _waiting(status: Mapping) -> bool:
    """Queued by `launch`/`resume` and not started yet."""
    return status.get("state") == "queued" and not status.get("token") and bool(status.get("launch"))


def _gpus_in_use(status: Mapping) -> list[int]:
    if isinstance(status.get("gpus"), list):
        return [int(g) for g in status["gpus"]]
    device = str(status.get("device") or "")
    return [int(device.split(":")[1])] if device.startswith("cuda:") else [0]


def fit(status: Mapping, active: list[Mapping], devices: Devices | None = None) -> tuple[bool, list[int] | None]:
    """Whether a queued job fits next to the active ones (of every kind), and which GPUs it gets."""
    device = str(status.get("device") or "cpu")
    if devices is None:
        devices = Devices.here(cuda=_kind(device) == "cuda")
    limit = devices.limit(device, status.get("max_concurrent"))
    if _kind(device) != "cuda":
        busy = sum(1 for other in active if _kind(other.get("device")) == _kind(device))
        return busy < limit, None
    use = {i: 0 for i in range(devices.cuda_count)}
    for other in active:
        if _kind(other.get("device")) == "cuda":
            for gpu in _gpus_in_use(other):
                use[gpu] = use.get(gpu, 0) + 1
    wanted = [int(device.split(":")[1])] if ":" in device else sorted(use, key=lambda g: (use[g], g))
    free = [g for g in wanted if use.get(g, 0) < limit][: int(status.get("nproc") or 1)]
    return len(free) == int(status.get("nproc") or 1), free


def plan(statuses: Mapping[str, Mapping], devices: Devices) -> list[Start]:
    """The queued runs to start now, in order, each with the GPUs it gets (None off CUDA).

    `statuses`: {run id: status} of this machine's runs, oldest first. Started ones (running, or
    queued with a token) hold slots; queued ones with a `launch` part wait, first queued first
    served (`queued_at`, else `created`, then run id); a run that does not fit yet does not keep
    later ones from starting. No I/O and no processes: RunError only for a run whose own
    `max_concurrent` (or `devices.max_concurrent`) is not a whole number >= 1.
    """
    active = [status for status in statuses.values() if _started(status)]
    waiting = sorted((status.get("queued_at") or status.get("created") or 0, run_id)
                     for run_id, status in statuses.items() if _waiting(status))
    starts: list[Start] = []
    for _, run_id in waiting:
        fits, gpus = fit(statuses[run_id], active, devices)
        if fits:
            starts.append((run_id, gpus))
            active.append({**statuses[run_id], "state": "running", "gpus": gpus})
    return starts


@contextmanager
def scheduler_lock(base: Path) -> Iterator[None]:
    """One scheduling decision at a time across processes, for every kind of job (<runs>/.lock)."""
    with locked(Path(base) / ".lock"):
        yield


def job_folders(base: Path) -> list[runs.Run]:
    """Every job of a jobs folder, oldest first: training runs and generation jobs (a folder with a
    status.json; `runs.list` shows the training runs only)."""
    found = []
    for path in Path(base).iterdir():
        if path.is_dir() and not path.name.startswith(".") and (path / "status.json").is_file():
            job = runs.Run(path)
            created = job.status().get("created")
            found.append((created if isinstance(created, (int, float)) else path.stat().st_mtime, job.id, job))
    return [job for _, _, job in sorted(found, key=lambda item: (item[0], item[1]))]


def refresh(root: str | os.PathLike | None = None) -> list[str]:
    """Mark vanished jobs `interrupted`, then start queued jobs (of every kind) while slots are free.

    Returns the ids of the jobs it started. Safe to call from any process at any time.
    """
    base = runs.runs_root(root)
    started: list[str] = []
    with scheduler_lock(base):
        process.reap_children()
        scan = process.token_pids()  # processes first, statuses after: a run that exited has written its end
        here = socket.gethostname()
        found: dict[str, tuple[runs.Run, dict]] = {}
        for run in job_folders(base):
            status = run.status()
            if _started(status):
                if process.vanished(status, scan):
                    status = _mark_interrupted(run)
                if status.get("state") in runs.ACTIVE_STATES and status.get("host") not in (None, here):
                    continue  # another node's run holds none of this machine's slots
            found[run.id] = (run, status)
        if not any(_waiting(status) for _, status in found.values()):
            return started
        devices = Devices.here(cuda=any(_waiting(s) and _kind(s.get("device")) == "cuda" for _, s in found.values()))
        replan = True
        while replan:  # again after a run that did not start: its slot is free for the next one
            replan = False
            for run_id, gpus in plan({key: status for key, (_, status) in found.items()}, devices):
                run, status = found[run_id]
                slots = devices.limit(str(status.get("device") or "cpu"), status.get("max_concurrent"))
                status = start(run, gpus, slots)
                found[run_id] = (run, status)
                if status.get("state") != "running":
                    replan = True
                    break
                started.append(run_id)
    return started


def _mark_interrupted(run: runs.Run) -> dict:
    def change(current: dict) -> dict | None:
        if current.get("state") not in runs.ACTIVE_STATES:
            return None  # it finished while we looked
        pid = current.get("pid") or current.get("supervisor_pid")
        return {"state": "interrupted", "ended": runs.now(),
                "error": f"the training process (pid {pid}) vanished without finishing "
                         "(killed or machine restarted); resume it to continue from its last checkpoint"}
    return run.update_job_status(change)
