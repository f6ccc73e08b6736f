"""Process inspection for background runs: /proc scan, pid liveness, boot id, start ticks, signals.

Every process of a run carries the environment variable LEGO_RUN_TOKEN (inherited by torchrun's
workers, which live in their own sessions), so liveness checks and forced kills find all of them,
and a reused pid never passes for a live run. Without /proc the recorded pids are checked instead.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

TOKEN_ENV = "LEGO_RUN_TOKEN"
_CHILDREN: list[subprocess.Popen] = []  # supervisors started by this process, reaped in refresh()


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


def _token_pids() -> dict[str, list[int]] | None:
    """{run token: live pids carrying it} from /proc/*/environ; None where /proc is unavailable."""
    if not os.path.isdir("/proc/self"):
        return None
    found: dict[str, list[int]] = {}
    needle = TOKEN_ENV.encode() + b"="
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
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


def _run_pids(status: dict, scan: dict | None = None) -> list[int]:
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


def live_pids(status: dict) -> list[int]:
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
    for proc in list(_CHILDREN):
        if proc.poll() is not None:
            _CHILDREN.remove(proc)


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(status: dict, timeout: float) -> bool:
    """Wait up to `timeout` seconds for a run's processes to exit; True once none is left."""
    deadline = time.monotonic() + timeout
    while True:
        _reap_children()
        if not _run_pids(status):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
