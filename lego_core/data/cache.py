"""Processed-dataset store: a Dataset as arrays.npz + items.parquet + meta.json (no pickles).

Readers are slow on big files; `cached_build` keys a processed dataset by a hash of its source
files (path, size, mtime) and options, so the second load only reads arrays. The hash is also
`Dataset.info["fingerprint"]`, which the tokenizer cache builds on.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from lego_core.data.schema import SPLITS, Dataset, Impressions
from lego_core.paths import cache_dir

FORMAT_VERSION = 1  # bump when a reader's output changes so old cache entries are ignored
PROCESSED = ".processed"  # under cache/datasets/; dot-folders are not registered datasets
_IMPRESSION_FIELDS = ("ids", "users", "times", "history_end", "offsets", "items", "labels")


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


def read_dataset(folder: Path) -> Dataset:
    """The Dataset stored by `write_dataset` (arrays loaded without pickle)."""
    meta = json.loads((Path(folder) / "meta.json").read_text())
    with np.load(Path(folder) / "arrays.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    items = pd.read_parquet(Path(folder) / "items.parquet")
    splits = {s: Impressions(*(arrays[f"{s}.{name}"] for name in _IMPRESSION_FIELDS)) for s in meta["splits"]}
    return Dataset(name=meta["name"], items=items, users=arrays["users"].astype(object),
                   seq_offsets=arrays["seq_offsets"], seq_items=arrays["seq_items"], splits=splits,
                   text_fields=meta["text_fields"], category_field=meta["category_field"], info=meta["info"])


def write_atomic(target: Path, fill: Callable[[Path], None], replace: bool = False) -> None:
    """Create folder `target` by filling a temporary sibling then renaming it into place, so a
    reader never sees a half-written folder and a failed `fill` leaves nothing behind."""
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


def cached_build(kind: str, sources: list[Path], options: dict, build: Callable[[], Dataset]) -> Dataset:
    """The processed dataset for (kind, sources, options): from the cache, else built and stored."""
    key = fingerprint(kind, sources, options)
    folder = cache_dir("datasets", PROCESSED) / f"{kind}-{key}"
    if (folder / "meta.json").is_file():
        try:
            dataset = read_dataset(folder)
            dataset.info["cache"] = "hit"
            return dataset
        except (OSError, ValueError, KeyError):
            shutil.rmtree(folder, ignore_errors=True)  # corrupt entry: rebuild below
    dataset = build()
    dataset.info["fingerprint"] = key
    dataset.info["options"] = _jsonable(options)
    write_atomic(folder, lambda tmp: write_dataset(dataset, tmp))
    dataset.info["cache"] = "miss"
    return dataset


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
    assert len(np.unique(all_ids)) == len(all_ids), "impression ids must be unique across splits"
