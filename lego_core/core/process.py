"""Process identity for background runs: which live processes provably belong to a run, and signals
sent only to those.

Every process of a run carries the environment variable LEGO_RUN_TOKEN (inherited by torchrun's
workers, which live in their own sessions). A pid written in a run's status is only a claim: it
is ours when its environment carries the run's token, or when its start time (/proc/PID/stat field
22) equals the one recorded beside it. Nothing else is ever signalled: a forged or reused pid (an
unrelated process, pid 1) fails both proofs, and the run is then judged gone, not killed.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

TOKEN_ENV = "LEGO_RUN_TOKEN"
CHILDREN: list[subprocess.Popen] = []  # supervisors started by this process, reaped in refresh()


def boot_id() -> str | None:
    """This machine boot's id (a run recorded under another boot is gone)."""
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


def start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks since boot (a reused pid has another), None if unknown."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    """The pid exists and is not a zombie (says nothing of whose it is)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    fields = _proc_stat(pid)
    return not (fields and fields[0] == "Z")


def _token_of(pid: int) -> str | None:
    """The LEGO_RUN_TOKEN in a process's environment, None when absent or unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            env = handle.read()
    except (OSError, ValueError):
        return None
    needle = TOKEN_ENV.encode() + b"="
    for entry in env.split(b"\0"):
        if entry.startswith(needle):
            return entry[len(needle):].decode(errors="replace")
    return None


def is_ours(pid: object, token: str | None = None, ticks: int | None = None) -> bool:
    """Proof that `pid` is a run's live process: its environment carries the run's `token`, or its
    start time equals the recorded `ticks`. pid 1 and unprovable pids never are."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return False
    if not pid_alive(pid):
        return False
    if token and _token_of(pid) == token:
        return True
    return isinstance(ticks, int) and start_ticks(pid) == ticks


def token_pids() -> dict[str, list[int]] | None:
    """{run token: live pids carrying it} from /proc/*/environ; None where /proc is unavailable."""
    if not os.path.isdir("/proc/self"):
        return None
    found: dict[str, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        token = _token_of(pid)
        if token is not None and pid_alive(pid):
            found.setdefault(token, []).append(pid)
    return found


def _claims(status: dict) -> list[tuple[object, int | None]]:
    """The (pid, start ticks) pairs a status records: the supervisor's and the trainer's."""
    return [(status.get("supervisor_pid"), status.get("supervisor_start_ticks")),
            (status.get("pid"), status.get("start_ticks"))]


def run_pids(status: dict, scan: dict | None = None) -> list[int]:
    """Live pids that provably belong to a run: every process carrying its token, plus recorded
    pids whose start time matches the recorded one. Never pid 1."""
    token = status.get("token")
    scan = token_pids() if scan is None and token else scan
    pids = {pid for pid in (scan or {}).get(token, []) if pid > 1} if token else set()
    for pid, ticks in _claims(status):
        if isinstance(pid, int) and pid not in pids and is_ours(pid, token, ticks):
            pids.add(pid)
    return sorted(pids)


def live_pids(status: dict) -> list[int]:
    """Live pids of a run's processes (see run_pids)."""
    return run_pids(status)


def unproven_pids(status: dict) -> list[int]:
    """Recorded pids that are alive but cannot be proven to be the run's (forged, or reused)."""
    proven = set(run_pids(status))
    return sorted({pid for pid, _ in _claims(status)
                   if isinstance(pid, int) and pid not in proven and pid_alive(pid)})


def vanished(status: dict, scan: dict | None) -> bool:
    """True when an active run's processes are gone (killed, crashed, machine rebooted) or the
    recorded ones cannot be proven to be the run's."""
    if status.get("host") not in (None, socket.gethostname()):
        return False  # another node's run: its own node decides
    if status.get("boot_id") and boot_id() and status["boot_id"] != boot_id():
        return True
    token = status.get("token")
    if token and scan is not None:
        return not scan.get(token)
    if not any(isinstance(pid, int) for pid, _ in _claims(status)):
        return False  # never started by us and no pid recorded yet: nothing to judge
    if not os.path.isdir("/proc/self"):  # no way to prove identity: judge by liveness alone
        return not any(isinstance(pid, int) and pid > 1 and pid_alive(pid) for pid, _ in _claims(status))
    return not run_pids(status, scan)


def reap_children() -> None:
    """Collect the exit status of supervisors this process started (no zombies)."""
    for proc in list(CHILDREN):
        if proc.poll() is not None:
            CHILDREN.remove(proc)


def signal_run(status: dict, sig: signal.Signals, only: list[int] | None = None) -> list[int]:
    """Send `sig` to the run's proven processes (or to those of `only` that are proven); returns
    the pids signalled. A pid that fails the identity proof, and this process, are never signalled."""
    targets = [pid for pid in run_pids(status) if pid != os.getpid() and (only is None or pid in only)]
    for pid in targets:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    return targets


def wait_gone(status: dict, timeout: float) -> bool:
    """Wait up to `timeout` seconds for a run's processes to exit; True once none is left."""
    deadline = time.monotonic() + timeout
    while True:
        reap_children()
        if not run_pids(status):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
