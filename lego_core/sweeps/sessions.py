"""Who serves a sweep: worker identities and liveness, their sessions kept in the study (what the
wall-time budget counts), background workers and pausing them."""
from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from lego_core.core import process
from lego_core.sweeps import study as studies


def me() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "ticks": process.start_ticks(pid), "boot": process.boot_id()}


def alive(owner: Any) -> bool:
    """Whether the worker `owner` still runs (judged only on its own machine: elsewhere, True)."""
    if not isinstance(owner, dict):
        return False
    if owner.get("host") != socket.gethostname():
        return True
    if owner.get("boot") and process.boot_id() and owner["boot"] != process.boot_id():
        return False
    return process.is_ours(owner.get("pid"), ticks=owner.get("ticks"))


def sessions(study: Any) -> list[dict]:
    """The workers that served the sweep, each {"host", "pid", "started", "seen", "ended", "alive"}."""
    out = []
    for key, value in study.user_attrs.items():
        if key.startswith(studies.WORKER_PREFIX) and isinstance(value, dict):
            out.append({**value, "alive": value.get("ended") is None and alive(value)})
    return sorted(out, key=lambda s: s.get("started") or 0)


def elapsed(study: Any) -> float:
    """Seconds during which at least one worker served the sweep (overlaps counted once)."""
    spans = []
    for s in sessions(study):
        start = s.get("started")
        end = s.get("ended") or (time.time() if s["alive"] else s.get("seen"))
        if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end > start:
            spans.append((start, end))
    total, until = 0.0, -math.inf
    for start, end in sorted(spans):
        if end > until:
            total += end - max(start, until)
            until = end
    return total


def start_background(sweep_id: str, storage: str | None = None, runs_dir: Any = None) -> int:
    """Start a worker in its own session (it outlives the app); its output goes to
    cache/sweeps/<sweep id>.log. Returns its pid."""
    from lego_core.core.paths import PROJECT_ROOT

    studies.load(sweep_id, storage)  # a missing sweep is refused here, not in a detached process
    argv = [sys.executable, "-m", "lego_core", "sweep", "worker", sweep_id]
    if storage:
        argv += ["--storage", storage]
    if runs_dir:
        argv += ["--runs-dir", str(runs_dir)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    with open(studies.sweeps_dir() / f"{sweep_id}.log", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=str(PROJECT_ROOT))
    return proc.pid


def stop(sweep_id: str, storage: str | None = None) -> list[int]:
    """Ask this machine's workers of a sweep to pause (SIGTERM); returns their pids."""
    study, _ = studies.load(sweep_id, storage)
    # alive() proved each pid by its start time: a forged or reused pid is never signalled
    pids = [s["pid"] for s in sessions(study) if s["alive"] and s.get("host") == socket.gethostname()
            and s["pid"] != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return pids
