"""Crash-safe file and folder writes shared by the run store, caches and trainers (the one home of
atomic writes).

Every write goes to a temporary file in the same folder and is then renamed over the target with
`os.replace`, which is atomic on POSIX: a reader sees the old file or the new one, never half of it,
even when the writer is killed mid-write.
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> Path:
    """Write `data` to `path` atomically (temp file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8", fsync: bool = True) -> Path:
    """Write `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode(encoding), fsync=fsync)


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` hook: numpy scalars/arrays and paths become plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2, fsync: bool = True) -> Path:
    """Write `obj` as JSON atomically (numpy values converted)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=json_default), fsync=fsync)


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray, fsync: bool = True) -> Path:
    """Save an array in .npy format atomically (never pickles: object arrays are refused)."""
    array = np.asarray(array)
    if array.dtype == object:
        raise TypeError("atomic_save_npy stores numeric arrays only (object arrays would need pickle)")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return atomic_write_bytes(path, buffer.getvalue(), fsync=fsync)


def atomic_write_folder(target: str | os.PathLike, fill: Callable[[Path], None], replace: bool = False) -> Path:
    """Create folder `target` by filling a temporary sibling, then renaming it into place: a reader
    never sees a half-written folder and a failed `fill` leaves nothing behind. When another process
    wrote `target` first, theirs is kept (unless `replace`, which swaps the old folder out)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        fill(tmp)
        if replace and target.exists():
            old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process wrote it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


@contextmanager
def locked(path: str | os.PathLike, mode: str = "a+", shared: bool = False, wait: bool = True) -> Iterator[IO]:
    """Hold a lock on `path` (created if absent) for the with-block, across processes (flock);
    yields the open file. The one file lock of lego_core: schedulers, status writers and sweep
    workers take it exclusively; a live trainer holds its run's `shared`. With `wait=False` a lock
    another process holds raises BlockingIOError at once. The kernel drops it when the holder dies."""
    with open(path, mode) as handle:
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        fcntl.flock(handle, flags if wait else flags | fcntl.LOCK_NB)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON record as a line and flush it, under an exclusive lock (concurrent writers
    never interleave); after a writer that died mid-line, the record starts on a fresh line."""
    line = json.dumps(record, default=json_default).encode("utf-8") + b"\n"
    with locked(path, "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write(line)
        handle.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The JSON-object lines of a file, oldest first ([] when absent); torn or corrupt lines are skipped."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in raw.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
