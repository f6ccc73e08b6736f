"""The supervisor of one job: `python -m lego_core.jobs worker RUN_DIR -- <job argv>`.

Started by `launcher.start` in its own process session, it runs the job's command (the trainer, or
a generation), forwards SIGTERM to it (SIGKILL after the cancel's grace time), records how the job
ended when the command could not (killed, crashed), then starts the next queued job
(`scheduler.refresh`) and writes its last log line, `FINAL_LINE` ("[jobs] ... done"): a follower
of the log (`jobs logs --follow`) stops there, after everything the supervisor had to say.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from lego_core import runs
from lego_core.core import process
from lego_core.jobs.scheduler import refresh

FINAL_LINE = "[jobs] supervisor done"  # the last line a supervisor writes to the job's log


def tail(path: os.PathLike | str, lines: int) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block, data = 65536, b""
            while size > 0 and data.count(b"\n") <= lines:
                step = min(block, size)
                size -= step
                handle.seek(size)
                data = handle.read(step) + data
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:] if lines > 0 else [])


def _last_log_line(run: runs.Run) -> str:
    for line in reversed(tail(run.log_path, 20).splitlines()):
        if line.strip() and not line.startswith("[jobs]"):
            return line.strip()[:300]
    return ""


def _supervise(child: subprocess.Popen, run: runs.Run, received: list[int]) -> int:
    """Wait for the training; once a stop signal came, SIGKILL what is left after the grace time."""
    deadline = None
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if received and deadline is None:
            grace = run.status().get("cancel_timeout")
            deadline = time.monotonic() + (grace if isinstance(grace, (int, float)) else 30.0)
        if deadline is not None and time.monotonic() > deadline:
            print("[jobs] the training did not stop in time: killing it", flush=True)
            token = os.environ.get(process.TOKEN_ENV)
            if token:  # every process of this run carries the token (torchrun's workers included)
                process.signal_run({"token": token}, signal.SIGKILL)
            if child.poll() is None:
                child.kill()  # our own child: no proof needed
            deadline = time.monotonic() + 5.0


def supervise(run_dir: str, argv: list[str]) -> int:
    """Supervise one job: start its command, forward SIGTERM, record the end, start the next job."""
    run = runs.open(run_dir)
    token = os.environ.get(process.TOKEN_ENV)
    received: list[int] = []
    child: subprocess.Popen | None = None

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        if child is not None and child.poll() is None:
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = 1
    if not received:
        try:
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        except OSError as exc:
            print(f"[jobs] could not start {argv[0]}: {exc}", flush=True)
            child = None
        if child is not None:
            code = _supervise(child, run, received)
    print(f"[jobs] {time.strftime('%Y-%m-%d %H:%M:%S')} training exited with code {code}", flush=True)
    last_line = _last_log_line(run)
    node_rank = int((run.status().get("launch") or {}).get("node_rank") or 0)

    def finish(current: dict) -> dict | None:
        if token and current.get("token") != token:
            return None  # the run was resumed meanwhile: a newer start owns its status
        fields: dict[str, Any] = {"exit_code": code}
        if current.get("state") in runs.FINAL_STATES:  # the trainer recorded how it ended
            fields.update(state=current["state"], error=None)
        else:
            if current.get("cancel_requested") or received:
                fields.update(state="cancelled", error=None)
            elif code == 0:
                fields.update(state="succeeded", error=None)
                if node_rank:
                    fields["note"] = "worker node: metrics and embeddings are written by node 0"
            elif code < 0:
                name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
                fields.update(state="interrupted",
                              error=f"the training process was killed by {name}; resume it to continue")
            else:
                fields.update(state="failed", error=f"training exited with code {code}"
                              + (f": {last_line}" if last_line else "; see log.txt"))
        if not current.get("ended") or fields.get("state"):
            fields["ended"] = runs.now()
        return fields

    run.update_job_status(finish)
    try:
        refresh(run.path.parent)
    except Exception as exc:  # never lose the run's result over a scheduling problem
        print(f"[jobs] could not start the next queued run: {exc}", flush=True)
    print(FINAL_LINE, flush=True)
    return 0 if code == 0 else 1
