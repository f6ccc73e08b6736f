"""The bad-input table: each `Case` arranges a bad input (or an injected fault) in a fresh folder,
acts on it through the CLI, the Python API or the app, and states what a user must see.

Every case asserts three things (see `tests/test_bad_inputs.py`):
- the outcome: the exception type (a LegoError subclass) or, for CLI cases, the exit code;
- the message: one line that names the file or field (`names`, case-insensitive substring);
- nothing existing changed: every path `keep(ctx)` returns is byte-identical afterwards.

Cases where the right behaviour is to recover (a corrupt cache is rebuilt) set `raises=None`: the
recovery must say what it did as a one-line warning (`lego_core.data.io.warn` or any UserWarning),
which `names` is matched against, and `check` asserts the recovered result. Each area keeps its table in its own module of this
package (`data.py`, `runs.py`, `app.py`); `tests/test_bad_inputs.py` runs them all.
"""
from __future__ import annotations

import hashlib
import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class CliResult:
    """What `cli(...)` saw: the exit code and what was printed."""

    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Case:
    id: str
    arrange: Callable[[Path], dict]
    act: Callable[[dict], Any]
    raises: type[BaseException] | None = None  # expected exception (API cases); None: must not raise
    exit: int | None = None  # expected exit code (CLI cases, `act` returns a CliResult)
    names: str | Callable[[dict], str] = ""  # the message must contain this (a file, a field, a fix)
    keep: Callable[[dict], list[Path]] = field(default=lambda ctx: [])  # must be unchanged
    check: Callable[[dict, Any], None] | None = None  # further assertions on the result


def cli(*argv: str) -> CliResult:
    """Run `python -m lego_core ARGV` in-process; a traceback (any non-LegoError) fails the case."""
    from lego_core.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return CliResult(int(code), out.getvalue(), err.getvalue())


def snapshot(paths: list[Path]) -> dict[str, str]:
    """Content hash of every file under `paths` (folders recursively); missing paths recorded as such."""
    found: dict[str, str] = {}
    for root in paths:
        root = Path(root)
        if not root.exists():
            found[str(root)] = "<missing>"
            continue
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if path.name.startswith(".") and path.name.endswith((".lock", ".tmp")):
                continue  # lock files and temp files of atomic writes are not user data
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def cache_root() -> Path:
    """The per-test cache folder (tests/conftest.py sets LEGO_CACHE_DIR)."""
    return Path(os.environ["LEGO_CACHE_DIR"])
