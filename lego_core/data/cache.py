"""Processed-dataset store: a Dataset as arrays.npz + items.parquet + meta.json (no pickles).

Readers are slow on big files; `cached_build` keys a processed dataset by a hash of its source
files (path, size, mtime) and options, so the second load only reads arrays. The hash is also
`Dataset.info["fingerprint"]`, which the tokenizer cache builds on.

Every cache of the package (processed datasets, token tables, LM layer caches, the UMAP and
augment stores, generated-field sidecars) treats a file it cannot read back the same way:
`CORRUPT_ERRORS` lists the exceptions that mean "this cache file is corrupt", `CorruptFile` names
the file and why, `discard` removes the entry, and the caller warns in one line and rebuilds.
"""
from __future__ import annotations

import functools
import hashlib
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
import pandas as pd
import pyarrow as pa

from lego_core.data.arrays import sorted_unique
from lego_core.data.io import warn
from lego_core.data.schema import SPLITS, Dataset, Impressions
from lego_core.core.fileio import atomic_write_folder
from lego_core.core.paths import cache_dir

FORMAT_VERSION = 1  # bump when a reader's output changes so old cache entries are ignored
PROCESSED = ".processed"  # under cache/datasets/; dot-folders are not registered datasets
_IMPRESSION_FIELDS = ("ids", "users", "times", "history_end", "offsets", "items", "labels")

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
    if "allow_pickle" in text:  # numpy's words for an object array or a file that is not .npy/.npz
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


def source_signature(paths: list[Path]) -> list[list]:
    """[resolved path, size, mtime_ns] of each source file: changes when a file is edited."""
    out = []
    for path in paths:
        stat = Path(path).stat()
        out.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    return out


def fingerprint(kind: str, sources: list[Path], options: dict) -> str:
    """Hex hash of reader kind, source files and options (the processed-cache key)."""
    payload = json.dumps({"kind": kind, "version": FORMAT_VERSION, "sources": source_signature(sources),
                          "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _jsonable(value):
    """Info values as plain JSON types (numpy scalars/arrays become Python ones)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def write_dataset(dataset: Dataset, folder: Path) -> None:
    """Write the three files into an existing folder (callers make the folder atomic)."""
    arrays = {"users": np.asarray(dataset.users, dtype=str), "seq_offsets": dataset.seq_offsets,
              "seq_items": dataset.seq_items}
    for split, imps in dataset.splits.items():
        for name in _IMPRESSION_FIELDS:
            arrays[f"{split}.{name}"] = getattr(imps, name)
    if len(arrays["users"]) == 0:
        arrays["users"] = np.zeros(0, dtype="<U1")
    np.savez(folder / "arrays.npz", **arrays)
    dataset.items.to_parquet(folder / "items.parquet", index=False)
    meta = {"format": FORMAT_VERSION, "name": dataset.name, "splits": list(dataset.splits),
            "text_fields": dataset.text_fields, "category_field": dataset.category_field,
            "info": _jsonable(dataset.info)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))


def _read_meta(path: Path) -> dict:
    meta = json.loads(path.read_text(encoding="utf-8"))
    expect(isinstance(meta, dict), path, "not a JSON object")
    expect(meta.get("format") == FORMAT_VERSION, path, f"format {meta.get('format')!r}, expected {FORMAT_VERSION}")
    expect(isinstance(meta.get("name"), str), path, "'name' is not a string")
    splits = meta.get("splits")
    expect(isinstance(splits, list) and all(s in SPLITS for s in splits) and len(set(splits)) == len(splits),
           path, f"'splits' must list some of {list(SPLITS)}")
    expect(isinstance(meta.get("text_fields"), list) and all(isinstance(f, str) for f in meta["text_fields"]),
           path, "'text_fields' is not a list of names")
    expect(meta.get("category_field") is None or isinstance(meta["category_field"], str), path,
           "'category_field' is not a name")
    expect(isinstance(meta.get("info"), dict), path, "'info' is not a JSON object")
    return meta


def _read_arrays(path: Path, splits: list[str]) -> dict[str, np.ndarray]:
    wanted = ["users", "seq_offsets", "seq_items"] + [f"{s}.{n}" for s in splits for n in _IMPRESSION_FIELDS]
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in wanted if k not in data.files]
        expect(not missing, path, f"lacks arrays {missing[:3]}")
        arrays = {k: data[k] for k in wanted}
    for key, value in arrays.items():
        kind = "U" if key == "users" else "iu"
        expect(value.ndim == 1 and value.dtype.kind in kind, path, f"array {key!r} has dtype {value.dtype} "
               f"and shape {value.shape}")
    return arrays


def _check_csr(path: Path, offsets: np.ndarray, values: np.ndarray, rows: int, what: str) -> None:
    expect(len(offsets) == rows + 1 and offsets[0] == 0 and offsets[-1] == len(values)
           and bool(np.all(np.diff(offsets) >= 0)), path, f"{what} offsets do not match their values")


def _in_range(values: np.ndarray, stop: int) -> bool:
    return len(values) == 0 or (int(values.min()) >= 0 and int(values.max()) < stop)


def read_dataset(folder: Path) -> Dataset:
    """The Dataset stored by `write_dataset` (arrays loaded without pickle).

    Raises CorruptFile naming the file when one is missing, truncated, not what it should be,
    or inconsistent with the others (array lengths, index ranges)."""
    folder = Path(folder)
    meta = read_file(folder / "meta.json", _read_meta)
    npz = folder / "arrays.npz"
    arrays = read_file(npz, lambda path: _read_arrays(path, meta["splits"]))
    items = read_file(folder / "items.parquet", pd.read_parquet)
    expect("item_id" in items.columns and items["item_id"].is_unique, folder / "items.parquet",
           "no unique 'item_id' column")
    n_items, n_users = len(items), len(arrays["users"])
    _check_csr(npz, arrays["seq_offsets"], arrays["seq_items"], n_users, "sequence")
    expect(_in_range(arrays["seq_items"], n_items), npz, "sequence items out of range")
    splits = {}
    lengths = np.diff(arrays["seq_offsets"])
    for s in meta["splits"]:
        imps = Impressions(*(arrays[f"{s}.{name}"] for name in _IMPRESSION_FIELDS))
        m = len(imps.ids)
        expect(all(len(v) == m for v in (imps.users, imps.times, imps.history_end)), npz,
               f"{s} impression arrays differ in length")
        expect(len(imps.labels) == len(imps.items), npz, f"{s} labels and items differ in length")
        _check_csr(npz, imps.offsets, imps.items, m, f"{s} impression")
        expect(_in_range(imps.users, n_users) and _in_range(imps.items, n_items), npz, f"{s} indices out of range")
        expect(bool(np.all((imps.history_end >= 0) & (imps.history_end <= lengths[imps.users]))), npz,
               f"{s} history ends out of range")
        splits[s] = imps
    return Dataset(name=meta["name"], items=items, users=arrays["users"].astype(object),
                   seq_offsets=arrays["seq_offsets"], seq_items=arrays["seq_items"], splits=splits,
                   text_fields=meta["text_fields"], category_field=meta["category_field"], info=meta["info"])


def probe_dataset(folder: Path) -> str:
    """"" when the stored dataset's files open (JSON parses, the npz and Parquet footers read), else
    the reason naming the file. Cheap: for listings; `read_dataset` checks everything."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    try:
        read_file(folder / "meta.json", _read_meta)
        read_file(folder / "arrays.npz", lambda path: zipfile.ZipFile(path).close())
        read_file(folder / "items.parquet", lambda path: pq.ParquetFile(path).close())
    except CorruptFile as exc:
        return str(exc)
    return ""


def cached_build(kind: str, sources: list[Path], options: dict, build: Callable[[], Dataset]) -> Dataset:
    """The processed dataset for (kind, sources, options): from the cache, else built and stored.
    A corrupt entry (any file missing, truncated or inconsistent) is reported in one line and rebuilt."""
    key = fingerprint(kind, sources, options)
    folder = cache_dir("datasets", PROCESSED) / f"{kind}-{key}"
    if os.path.lexists(folder):
        try:
            dataset = read_dataset(folder)
            dataset.info["cache"] = "hit"
            return dataset
        except CorruptFile as exc:
            warn(f"processed dataset cache: {exc}; rebuilding it")
            discard(folder)
    dataset = build()
    dataset.info["fingerprint"] = key
    dataset.info["options"] = _jsonable(options)
    atomic_write_folder(folder, lambda tmp: write_dataset(dataset, tmp))
    dataset.info["cache"] = "miss"
    return dataset


def discard_processed(key: object) -> None:
    """Drop the processed-cache entry of fingerprint `key` (a dataset's `info["fingerprint"]` as
    read): a registration keeps its own processed copy, and a second one was never freed."""
    if isinstance(key, str) and key:
        for folder in cache_dir("datasets", PROCESSED).glob(f"*-{key}"):
            discard(folder)


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
