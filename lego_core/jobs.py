"""Background training jobs: launch, schedule, cancel, resume and watch runs outside the caller.

There is no daemon. The run folders are the state, and every entry point (launch, list, status,
cancel, a finishing job) calls `refresh()`, which under a file lock (a) marks runs whose processes
vanished as `interrupted` and (b) starts queued runs while the device has free slots.

Each started run is a detached process session (`start_new_session`, so it outlives the Streamlit
server) running a small supervisor, `python -m lego_core.jobs worker RUN_DIR -- <training argv>`.
The supervisor runs the training (`python -m lego_core train --run-dir RUN_DIR`, or torchrun for
several processes), forwards SIGTERM to it, records how it ended when the trainer could not
(killed, crashed) and then starts the next queued run. Every process of a run carries the
environment variable LEGO_RUN_TOKEN (inherited by torchrun's workers, which live in their own
sessions), so liveness checks and forced kills find all of them, and a reused pid never passes for
a live run.
"""
from __future__ import annotations

import argparse
import builtins
import fcntl
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from lego_core import devices, runs
from lego_core.errors import LegoError, RecipeError, RunError
from lego_core.paths import PROJECT_ROOT

TOKEN_ENV = "LEGO_RUN_TOKEN"
# Tests swap the training command for a stand-in: a JSON list where "{run_dir}" is replaced by the
# run folder and "{resume}" by "--resume" (or dropped). Environment-based so that supervisors
# (other processes) starting the next queued run use it too.
WORKER_COMMAND_ENV = "LEGO_WORKER_COMMAND"
MAX_CONCURRENT_ENV = "LEGO_MAX_CONCURRENT"
DEFAULT_CPU_SLOTS = 2
DEFAULT_GPU_SLOTS = 1  # runs per GPU
RESUMABLE_STATES = ("interrupted", "cancelled", "failed")
_CHILDREN: list[subprocess.Popen] = []  # supervisors started by this process, reaped in refresh()


# ---- process inspection ------------------------------------------------------------------
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


def _start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks since boot (pid-reuse check), None if unknown."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _pid_alive(pid: int) -> bool:
    """The pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    return not (fields and fields[0] == "Z")


def _token_pids() -> dict[str, builtins.list[int]] | None:
    """{run token: live pids carrying it} from /proc/*/environ; None where /proc is unavailable."""
    if not os.path.isdir("/proc/self"):
        return None
    found: dict[str, builtins.list[int]] = {}
    needle = TOKEN_ENV.encode() + b"="
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with builtins.open(f"/proc/{name}/environ", "rb") as handle:
                env = handle.read()
        except OSError:
            continue
        for entry in env.split(b"\0"):
            if entry.startswith(needle):
                pid = int(name)
                if _pid_alive(pid):
                    found.setdefault(entry[len(needle):].decode(errors="replace"), []).append(pid)
                break
    return found


def _run_pids(status: dict, scan: dict | None = None) -> builtins.list[int]:
    """Live pids of a started run (all processes carrying its token, or its recorded pids)."""
    scan = _token_pids() if scan is None else scan
    token = status.get("token")
    if scan is not None and token:
        return sorted(scan.get(token, []))
    pids = []
    for key in ("supervisor_pid", "pid"):
        pid = status.get(key)
        if isinstance(pid, int) and _pid_alive(pid) and pid not in pids:
            pids.append(pid)
    return pids


def live_pids(status: dict) -> builtins.list[int]:
    """Live pids of a run's processes (its token's, or the pids it recorded)."""
    return _run_pids(status)


def _vanished(status: dict, scan: dict | None) -> bool:
    """True when an active run's processes are gone (killed, crashed, machine rebooted)."""
    if status.get("host") not in (None, socket.gethostname()):
        return False  # another node's run: its own node decides
    if status.get("boot_id") and _boot_id() and status["boot_id"] != _boot_id():
        return True
    token = status.get("token")
    if token and scan is not None:
        return not scan.get(token)
    pid = status.get("supervisor_pid") if token else status.get("pid")
    if not isinstance(pid, int):
        return False  # never started by us and no pid recorded yet: nothing to judge
    if not _pid_alive(pid):
        return True
    ticks = status.get("supervisor_start_ticks") if token else None
    return ticks is not None and _start_ticks(pid) not in (None, ticks)


def _reap_children() -> None:
    for proc in builtins.list(_CHILDREN):
        if proc.poll() is not None:
            _CHILDREN.remove(proc)


# ---- devices and slots -------------------------------------------------------------------------
def _resolve_device(device: str, recipe_device: str = "auto") -> str:
    """'auto' defers to the recipe's device, then to CUDA when present, else CPU; a device that is
    absent here is refused (RunError: it is the launch's choice, not the recipe's)."""
    try:
        devices.check_name(device, "device")
        chosen = recipe_device if device == "auto" else device
        if chosen == "auto":
            return "cuda" if devices.cuda_count() else "cpu"
        return devices.resolve(chosen, "device" if device != "auto" else "training.device")
    except RecipeError as exc:
        raise RunError(str(exc)) from None


def _limit(device: str, explicit: int | None) -> int:
    """Concurrent runs allowed per device (per GPU for CUDA): argument > $LEGO_MAX_CONCURRENT > default."""
    if explicit is not None:
        value, source = explicit, "max_concurrent"
    elif os.environ.get(MAX_CONCURRENT_ENV):
        value, source = os.environ[MAX_CONCURRENT_ENV], f"${MAX_CONCURRENT_ENV}"
    else:
        return DEFAULT_GPU_SLOTS if device.startswith("cuda") else (DEFAULT_CPU_SLOTS if device == "cpu" else 1)
    try:
        value = int(value)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise RunError(f"{source} must be a whole number >= 1 (got {value!r})")
    return value


def _kind(device: str | None) -> str:
    return (device or "cpu").split(":")[0]


def _gpus_in_use(status: dict) -> builtins.list[int]:
    if isinstance(status.get("gpus"), builtins.list):
        return [int(g) for g in status["gpus"]]
    device = str(status.get("device") or "")
    return [int(device.split(":")[1])] if device.startswith("cuda:") else [0]


def _fit(status: dict, active: builtins.list[dict]) -> tuple[bool, builtins.list[int] | None]:
    """Whether a queued run fits next to the active ones, and which GPUs it gets."""
    device = str(status.get("device") or "cpu")
    limit = _limit(device, status.get("max_concurrent"))
    if _kind(device) != "cuda":
        busy = sum(1 for other in active if _kind(other.get("device")) == _kind(device))
        return busy < limit, None
    use = {i: 0 for i in range(devices.cuda_count())}
    for other in active:
        if _kind(other.get("device")) == "cuda":
            for gpu in _gpus_in_use(other):
                use[gpu] = use.get(gpu, 0) + 1
    wanted = [int(device.split(":")[1])] if ":" in device else sorted(use, key=lambda g: (use[g], g))
    free = [g for g in wanted if use.get(g, 0) < limit][: int(status.get("nproc") or 1)]
    return len(free) == int(status.get("nproc") or 1), free


# ---- scheduling ----------------------------------------------------------------------------
@contextmanager
def _scheduler_lock(base: Path) -> Iterator[None]:
    """One scheduling decision at a time across processes (flock on <runs>/.lock)."""
    with builtins.open(base / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def refresh(root: str | os.PathLike | None = None) -> builtins.list[str]:
    """Mark vanished runs `interrupted`, then start queued runs while slots are free.

    Returns the ids of the runs it started. Safe to call from any process at any time.
    """
    base = runs.runs_root(root)
    started = []
    with _scheduler_lock(base):
        _reap_children()
        scan = _token_pids()  # processes first, statuses after: a run that exited has written its end
        everything = builtins.list(reversed(runs.list(base)))  # oldest first
        active, queued = [], []
        for run in everything:
            status = run.status()
            if status.get("state") == "running" or (status.get("state") == "queued" and status.get("token")):
                if _vanished(status, scan):
                    status = _mark_interrupted(run)
                if status.get("state") in runs.ACTIVE_STATES and status.get("host") in (None, socket.gethostname()):
                    active.append(status)
            elif status.get("state") == "queued" and status.get("launch"):
                queued.append((status.get("queued_at") or status.get("created") or 0, run.id, run, status))
        for _, _, run, status in sorted(queued, key=lambda item: (item[0], item[1])):
            fits, gpus = _fit(status, active)
            if fits:
                status = _start(run, gpus)
                if status.get("state") == "running":
                    active.append(status)
                    started.append(run.id)
    return started


def _mark_interrupted(run: runs.Run) -> dict:
    def change(current: dict) -> dict | None:
        if current.get("state") not in runs.ACTIVE_STATES:
            return None  # it finished while we looked
        pid = current.get("pid") or current.get("supervisor_pid")
        return {"state": "interrupted", "ended": runs.now(),
                "error": f"the training process (pid {pid}) vanished without finishing "
                         "(killed or machine restarted); resume it to continue from its last checkpoint"}
    return run.update_status(change)


def _training_argv(run: runs.Run, launch: dict, resume: bool) -> builtins.list[str]:
    """The command the supervisor runs: the trainer, through torchrun for several processes."""
    custom = os.environ.get(WORKER_COMMAND_ENV)
    if custom:
        command = []
        for part in json.loads(custom):
            if part == "{resume}":
                command += ["--resume"] if resume else []
            else:
                command.append(str(part).replace("{run_dir}", str(run.path)))
        return command
    device = str(launch.get("device") or "cpu")
    # --quiet: no progress bars in log.txt (the app follows progress through status.json)
    train = ["-m", "lego_core", "train", "--run-dir", str(run.path), "--quiet"]
    if resume:
        train.append("--resume")
    # CUDA runs see only their assigned GPUs (CUDA_VISIBLE_DEVICES), so "cuda" + LOCAL_RANK.
    train += ["--set", f"training.device={'cuda' if device.startswith('cuda') else device}"]
    nproc, nnodes = int(launch.get("nproc") or 1), int(launch.get("nnodes") or 1)
    if nproc == 1 and nnodes == 1:
        return [sys.executable, *train]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    if nnodes == 1:
        torchrun.append("--standalone")
    else:  # static rendezvous: node_rank 0 holds global rank 0, so node 0's run folder gets the results
        host, _, port = str(launch["rdzv_endpoint"]).rpartition(":")
        torchrun += ["--nnodes", str(nnodes), "--node_rank", str(launch.get("node_rank") or 0),
                     "--master_addr", host.strip("[]"), "--master_port", port]
    return [*torchrun, *train]


def _start(run: runs.Run, gpus: builtins.list[int] | None) -> dict:
    """Start a queued run's supervisor in its own session; returns the new status."""
    status = run.status()
    launch = dict(status.get("launch") or {})
    resume = bool(launch.get("resume")) and run.checkpoint_path("last").exists()
    token = f"{run.id}:{secrets.token_hex(4)}"
    argv = _training_argv(run, launch, resume)
    env = dict(os.environ)
    env.update({TOKEN_ENV: token, "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)})
    device = str(status.get("device") or "cpu")
    if device == "cpu" and "OMP_NUM_THREADS" not in env:  # concurrent CPU runs share the cores
        per_run = max(1, (os.cpu_count() or 1) // _limit(device, status.get("max_concurrent")))
        env["OMP_NUM_THREADS"] = str(per_run)
    if gpus is not None:
        visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[g] if g < len(visible) else str(g) for g in gpus)
    run.set_status(state="running", token=token, pid=None, pgid=None, supervisor_pid=None,
                   started=runs.now(), ended=None, error=None, gpus=gpus, host=socket.gethostname(),
                   boot_id=_boot_id(), resumed_from_checkpoint=resume, cancel_requested=False)
    command = [sys.executable, "-m", "lego_core.jobs", "worker", str(run.path), "--", *argv]
    try:
        with builtins.open(run.log_path, "ab") as log:
            log.write(f"[jobs] {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env, cwd=str(PROJECT_ROOT))
    except OSError as exc:
        return run.set_status(state="failed", ended=runs.now(), error=f"could not start the training process: {exc}")
    _CHILDREN.append(proc)
    ticks = _start_ticks(proc.pid)

    def record(current: dict) -> dict:
        fields = {"supervisor_pid": proc.pid, "pgid": proc.pid, "supervisor_start_ticks": ticks}
        if not current.get("pid"):  # the trainer writes its own pid (rank 0) once it runs
            fields["pid"] = proc.pid
        return fields
    return run.update_status(record)


# ---- public API -------------------------------------------------------------------------------
def launch(recipe: Any, device: str = "auto", nproc: int = 1, nnodes: int = 1, node_rank: int = 0,
           rdzv_endpoint: str | None = None, root: str | os.PathLike | None = None,
           max_concurrent: int | None = None, overrides: dict | builtins.list[str] | None = None) -> str:
    """Validate the recipe, create its run (queued) and start it when a slot is free; returns the id.

    A malformed recipe raises RecipeError before any folder or process exists.
    """
    from lego_core import datasets
    from lego_core.recipe import Recipe

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
    resolved = _resolve_device(device, getattr(getattr(loaded, "training", None), "device", "auto"))
    if resolved.startswith("cuda"):
        count = devices.cuda_count()
        wanted = int(resolved.split(":")[1]) + 1 if ":" in resolved else nproc
        if ":" in resolved and nproc > 1:
            raise RunError(f"device {resolved} names one GPU; use device 'cuda' for nproc={nproc}")
        if count < wanted:
            raise RunError(f"device {resolved} with nproc={nproc} needs {wanted} CUDA GPU(s); "
                           f"this machine has {count}. Use device 'cpu' or fewer processes")
    _limit(resolved, max_concurrent)  # a bad limit is refused before anything is created
    base = runs.runs_root(root)
    launch_info = {"device": resolved, "nproc": nproc, "nnodes": nnodes, "node_rank": node_rank,
                   "rdzv_endpoint": rdzv_endpoint, "resume": False}
    run = runs.create(loaded, root=base, device=resolved, nproc=nproc * nnodes, launch=launch_info,
                      max_concurrent=max_concurrent, queued_at=runs.now())
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
    with _scheduler_lock(base):  # no refresh may start it while we decide
        status = run.status_for_action()
        state = status.get("state")
        if state == "queued" and not status.get("token"):
            return run.set_status(state="cancelled", ended=runs.now(), error=None)
        if state == "cancelled":
            return status
        if state not in runs.ACTIVE_STATES:
            raise RunError(f"run {run.id} is {state}; only queued or running runs can be cancelled")
        if status.get("host") not in (None, socket.gethostname()):
            raise RunError(f"run {run.id} runs on host {status['host']}; cancel it there")
        run.set_status(cancel_requested=True, cancel_timeout=float(timeout))
    supervisor = status.get("supervisor_pid")
    pids = _run_pids(status)
    if isinstance(supervisor, int) and supervisor in pids:
        _signal([supervisor], signal.SIGTERM)  # the supervisor forwards it: one signal per process
    else:
        _signal(pids, signal.SIGTERM)
    if not wait:
        return run.status()
    if not _wait_gone(status, timeout):
        for _ in range(3):  # SIGKILL everything carrying the token (torchrun workers included)
            _signal(_run_pids(status), signal.SIGKILL)
            if _wait_gone(status, 5):
                break

    def finish(current: dict) -> dict | None:
        if current.get("token") != status.get("token") or current.get("state") not in runs.ACTIVE_STATES:
            return None  # the supervisor or trainer recorded the end (cancelled, or it had just finished)
        return {"state": "cancelled", "ended": runs.now(), "error": None}
    final = run.update_status(finish)
    refresh(base)
    return final


def _signal(pids: builtins.list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(status: dict, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap_children()
        if not _run_pids(status):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def resume(run_id: str, root: str | os.PathLike | None = None) -> str:
    """Queue an interrupted, cancelled or failed run again; it continues from checkpoints/last.pt."""
    run = runs.open(run_id, root)
    base = run.path.parent
    with _scheduler_lock(base):
        status = run.status_for_action()
        if status.get("state") not in RESUMABLE_STATES:
            raise RunError(f"run {run.id} is {status.get('state')}; only {', '.join(RESUMABLE_STATES)} runs "
                           "can be resumed")
        if _run_pids(status):
            raise RunError(f"run {run.id} is still stopping (its processes have not exited); "
                           "try again in a few seconds")
        launch_info = dict(status.get("launch") or {"device": status.get("device") or "cpu",
                                                    "nproc": status.get("nproc") or 1})
        launch_info["resume"] = True
        run.set_status(state="queued", launch=launch_info, token=None, pid=None, pgid=None,
                       supervisor_pid=None, error=None, ended=None, cancel_requested=False,
                       queued_at=runs.now(), resumes=int(status.get("resumes") or 0) + 1)
    refresh(base)
    return run.id


def status(run_id: str, root: str | os.PathLike | None = None) -> dict:
    """A run's status after refreshing the scheduler (so a vanished process shows `interrupted`)."""
    run = runs.open(run_id, root)
    refresh(run.path.parent)
    return run.status()


def list_runs(root: str | os.PathLike | None = None) -> builtins.list[runs.Run]:
    """All runs, newest first, after refreshing the scheduler."""
    refresh(root)
    return runs.list(root)


def delete(run_id: str, root: str | os.PathLike | None = None) -> None:
    """Remove a run folder (refreshing first, so a vanished 'running' run can go); refuses live runs."""
    run = runs.open(run_id, root)
    refresh(run.path.parent)
    with _scheduler_lock(run.path.parent):  # no refresh may start it while it is being removed
        runs.delete(run.path)


def logs(run_id: str, tail: int = 100, root: str | os.PathLike | None = None) -> str:
    """The last `tail` lines of a run's log.txt ('' before it has started)."""
    path = runs.open(run_id, root).log_path
    try:
        with builtins.open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block, data = 65536, b""
            while size > 0 and data.count(b"\n") <= tail:
                step = min(block, size)
                size -= step
                handle.seek(size)
                data = handle.read(step) + data
    except FileNotFoundError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-tail:] if tail > 0 else [])


# ---- supervisor ----------------------------------------------------------------------------------
def _last_log_line(run: runs.Run) -> str:
    for line in reversed(logs(run.path, tail=20).splitlines()):
        if line.strip() and not line.startswith("[jobs]"):
            return line.strip()[:300]
    return ""


def _supervise(child: subprocess.Popen, run: runs.Run, received: builtins.list[int]) -> int:
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
            scan = _token_pids() or {}
            token = os.environ.get(TOKEN_ENV)
            _signal([p for p in scan.get(token, []) if p != os.getpid()] if token else [child.pid], signal.SIGKILL)
            deadline = time.monotonic() + 5.0


def worker(run_dir: str, argv: builtins.list[str]) -> int:
    """Supervise one run: start the training, forward SIGTERM, record the end, start the next run."""
    run = runs.open(run_dir)
    token = os.environ.get(TOKEN_ENV)
    received: builtins.list[int] = []
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
        if current.get("state") in runs.ACTIVE_STATES:
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

    run.update_status(finish)
    try:
        refresh(run.path.parent)
    except Exception as exc:  # never lose the run's result over a scheduling problem
        print(f"[jobs] could not start the next queued run: {exc}", flush=True)
    return 0 if code == 0 else 1


# ---- CLI ---------------------------------------------------------------------------------------
def add_jobs_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `jobs launch|list|status|cancel|resume|logs`; each sets `func(args) -> exit code`."""
    parser = subparsers.add_parser("jobs", help="launch, list, cancel and resume background training runs")
    parser.add_argument("--runs-dir", default=None, help="folder of runs (default: cache/runs)")
    sub = parser.add_subparsers(dest="jobs_command", required=True)

    p = sub.add_parser("launch", help="start a recipe in the background (queued if no slot is free)")
    p.add_argument("recipe", help="recipe .yaml file or preset name")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--nproc", type=int, default=1, help="processes per node (torchrun DDP when > 1)")
    p.add_argument("--nnodes", type=int, default=1, help="number of machines")
    p.add_argument("--node-rank", type=int, default=0, help="this machine's rank (0..nnodes-1)")
    p.add_argument("--rdzv-endpoint", default=None, help="host:port of node 0 (multi-node)")
    p.add_argument("--max-concurrent", type=int, default=None, help="runs at once on this device")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. training.epochs=1 (repeatable)")
    p.set_defaults(func=_cmd_launch)

    p = sub.add_parser("list", help="all runs, newest first")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("status", help="a run's status as JSON")
    p.add_argument("run_id", type=runs.check_id)
    p.set_defaults(func=_cmd_status)
    p = sub.add_parser("cancel", help="stop a run (SIGTERM, then SIGKILL after --timeout)")
    p.add_argument("run_id", type=runs.check_id)
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=_cmd_cancel)
    p = sub.add_parser("resume", help="continue an interrupted, cancelled or failed run")
    p.add_argument("run_id", type=runs.check_id)
    p.set_defaults(func=_cmd_resume)
    p = sub.add_parser("logs", help="a run's log")
    p.add_argument("run_id", type=runs.check_id)
    p.add_argument("--tail", type=int, default=100)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")
    p.set_defaults(func=_cmd_logs)
    return parser


def _cmd_launch(args: argparse.Namespace) -> int:
    run_id = launch(args.recipe, device=args.device, nproc=args.nproc, nnodes=args.nnodes,
                    node_rank=args.node_rank, rdzv_endpoint=args.rdzv_endpoint, root=args.runs_dir,
                    max_concurrent=args.max_concurrent, overrides=args.overrides or None)
    state = runs.open(run_id, args.runs_dir).status().get("state")
    print(f"{run_id}\t{state}")
    return 0


def _when(stamp: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if isinstance(stamp, (int, float)) else "-"


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [("RUN", "STATE", "DEVICE", "NPROC", "PROGRESS", "EPOCH", "STARTED", "ERROR")]
    for run in list_runs(args.runs_dir):
        st = run.status()
        progress = st.get("progress")
        rows.append((run.id, str(st.get("state")), str(st.get("device") or "-"), str(st.get("nproc") or "-"),
                     f"{progress:.0%}" if isinstance(progress, (int, float)) else "-",
                     str(st.get("epoch") if st.get("epoch") is not None else "-"), _when(st.get("started")),
                     str(st.get("error") or "")[:60]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(status(args.run_id, args.runs_dir), indent=2))
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    final = cancel(args.run_id, timeout=args.timeout, root=args.runs_dir)
    print(f"{args.run_id}\t{final.get('state')}")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    run_id = resume(args.run_id, args.runs_dir)
    print(f"{run_id}\t{runs.open(run_id, args.runs_dir).status().get('state')}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    run = runs.open(args.run_id, args.runs_dir)
    position = run.log_path.stat().st_size if run.log_path.exists() else 0  # before the tail: lose nothing
    text = logs(args.run_id, tail=args.tail, root=args.runs_dir)
    if text:
        print(text, flush=True)
    if not args.follow:
        return 0
    try:
        while True:
            active = status(run.id, args.runs_dir).get("state") in runs.ACTIVE_STATES
            if run.log_path.exists():
                with builtins.open(run.log_path, "rb") as handle:
                    handle.seek(position)
                    chunk = handle.read()
                position += len(chunk)
                if chunk:
                    sys.stdout.write(chunk.decode("utf-8", errors="replace"))
                    sys.stdout.flush()
            if not active:
                return 0
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0


def main(argv: builtins.list[str] | None = None) -> int:
    """`python -m lego_core.jobs worker RUN_DIR -- CMD...` (the supervisor) or the jobs CLI."""
    argv = builtins.list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        if len(argv) < 4 or argv[2] != "--":
            print("usage: python -m lego_core.jobs worker RUN_DIR -- COMMAND...", file=sys.stderr)
            return 2
        return worker(argv[1], argv[3:])
    parser = argparse.ArgumentParser(prog="python -m lego_core.jobs")
    add_jobs_command(parser.add_subparsers(dest="command", required=True))
    from lego_core.cli import one_line

    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except LegoError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
