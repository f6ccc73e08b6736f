"""What every cache of the package shares: corrupt files reported and rebuilt the same way.

The processed-dataset store itself (`cached_build`, `read_dataset`) lives in `processed`. Every
cache of the package (processed datasets, token tables, LM layer caches, the UMAP and augment
stores, generated-field sidecars) treats a file it cannot read back the same way:
`CORRUPT_ERRORS` lists the exceptions that mean "this cache file is corrupt", `CorruptFile` names
the file and why, `discard` removes the entry, and the caller warns in one line and rebuilds.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sqlite3
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from lego_core.data.arrays import sorted_unique
from lego_core.data.io import warn
from lego_core.data.schema import SPLITS, Dataset

# What reading a damaged cache file raises: truncated/empty/garbage npz, npy, parquet, JSON and
# sqlite files, missing files, and wrong keys/types/shapes found while checking what was read.
CORRUPT_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError, zipfile.BadZipFile,
    struct.error, zlib.error, sqlite3.Error, pa.ArrowException)


class CorruptFile(ValueError):
    """A cache or stored file that cannot be read back, or whose content is inconsistent."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{self.path} is unreadable ({reason})")


def describe(exc: BaseException) -> str:
    """A short one-line reason for a corrupt-file exception (no advice to load unsafely)."""
    if isinstance(exc, CorruptFile):
        return exc.reason
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, EOFError):
        return "empty or truncated"
    if isinstance(exc, zipfile.BadZipFile):
        return "truncated or not a zip archive"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    text = " ".join(str(exc).split())
    text = re.sub(r"^Could not open Parquet input source '[^']*': ", "", text)  # the path is named already
    if "allow_pickle" in text or "Python objects in dtype" in text:  # numpy: an object array (mapped or not)
        return "not a plain numpy file (pickled objects or garbage; refused)"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {text}"
    if isinstance(exc, KeyError):
        return f"lacks entry {text}"
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def corrupt(path: str | os.PathLike, exc: BaseException) -> CorruptFile:
    """`exc` (one of CORRUPT_ERRORS) as a CorruptFile naming `path` (kept when it names its own)."""
    return exc if isinstance(exc, CorruptFile) else CorruptFile(path, describe(exc))


def read_file(path: str | os.PathLike, read: Callable[[Path], object]):
    """`read(path)`, with any CORRUPT_ERRORS turned into a CorruptFile naming the file."""
    try:
        return read(Path(path))
    except CORRUPT_ERRORS as exc:
        raise corrupt(path, exc) from None


def discard(path: str | os.PathLike) -> None:
    """Remove a corrupt cache entry (a folder or a file); missing is fine."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(path, ignore_errors=True)


def expect(condition: bool, path: str | os.PathLike, reason: str) -> None:
    """CorruptFile(path, reason) unless `condition` holds (checks of what a cache file held)."""
    if not condition:
        raise CorruptFile(path, reason)


def open_diskcache(folder: Path, what: str):
    """A diskcache.Cache on `folder` that never unpickles (`safe_disk()`); a corrupt or unopenable
    database is reported in one line, cleared and opened afresh. None (after a one-line warning)
    when even that fails or another process holds it locked: callers then work without a store."""
    import diskcache

    folder = Path(folder)
    for attempt in (0, 1):
        try:
            store = diskcache.Cache(str(folder), disk=safe_disk())
            try:
                len(store)  # reads the database: a damaged file fails here, not later
            except BaseException:
                store.close()
                raise
            return store
        except (diskcache.Timeout, *CORRUPT_ERRORS) as exc:
            # locked, read-only or not permitted: the store may be fine, so it is left as it is
            busy = isinstance(exc, (diskcache.Timeout, PermissionError, sqlite3.OperationalError))
            if attempt or busy:
                warn(f"{what} {folder} cannot be opened ({describe(exc)}); working without it")
                return None
            warn(f"{what} {folder} is unreadable ({describe(exc)}); clearing it and recomputing")
            discard(folder)
            folder.mkdir(parents=True, exist_ok=True)
    return None


@functools.lru_cache(maxsize=1)
def safe_disk() -> type:
    """A diskcache.Disk that stores only str/bytes/numbers and refuses pickled values on read, so
    a tampered or foreign store can never run code (diskcache pickles other types by default)."""
    import diskcache

    class SafeDisk(diskcache.Disk):
        def store(self, value, read, key=diskcache.core.UNKNOWN):
            if not read and type(value) not in (str, bytes, int, float):
                raise TypeError(f"cache values are str, bytes or numbers, not {type(value).__name__}")
            return super().store(value, read, key=key)

        def fetch(self, mode, filename, value, read):
            if mode == diskcache.core.MODE_PICKLE:
                raise ValueError("a stored value is pickled; this cache holds no pickles")
            return super().fetch(mode, filename, value, read)

    return SafeDisk


def check_dataset(dataset: Dataset) -> None:
    """Assert the schema invariants (for tests of every reader)."""
    n_items, n_users = dataset.num_items, dataset.num_users
    assert dataset.seq_offsets[0] == 0 and dataset.seq_offsets[-1] == len(dataset.seq_items)
    assert len(dataset.seq_offsets) == n_users + 1 and np.all(np.diff(dataset.seq_offsets) >= 0)
    assert len(dataset.seq_items) == 0 or (dataset.seq_items.min() >= 0 and dataset.seq_items.max() < n_items)
    assert dataset.items["item_id"].is_unique
    ids = []
    for split in SPLITS:
        imps = dataset.splits[split]
        assert len(imps.offsets) == len(imps) + 1 and imps.offsets[-1] == len(imps.items) == len(imps.labels)
        assert len(imps) == 0 or (imps.users.min() >= 0 and imps.users.max() < n_users)
        assert len(imps.items) == 0 or (imps.items.min() >= 0 and imps.items.max() < n_items)
        lengths = dataset.seq_offsets[imps.users + 1] - dataset.seq_offsets[imps.users]
        assert np.all((imps.history_end >= 0) & (imps.history_end <= lengths))
        ids.append(imps.ids)
    all_ids = np.concatenate(ids)
    assert len(sorted_unique(all_ids)) == len(all_ids), "impression ids must be unique across splits"
