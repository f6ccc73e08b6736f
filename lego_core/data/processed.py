"""Processed-dataset store: a Dataset as arrays/*.npy + cold.npy + items.parquet + meta.json (no pickles).

Readers are slow on big files; `cached_build` keys a processed dataset by a hash of its source
files (path, size, mtime) and options, so the second load only reads arrays. The hash is also
`Dataset.info["fingerprint"]`, which the tokenizer cache builds on.

The arrays are plain uncompressed .npy files opened with memory mapping (read-only views: nothing
is read until used, so a cached MIND-large opens in well under a second), with the natural cold
mask (`cold.natural_cold`) stored beside them rather than recomputed on every load. Registrations
hard-link the processed folder's files (one copy on disk however many registrations share a
source). Registrations made before this layout (format 1, one zipped arrays.npz) still load.
A file that cannot be read back is a `cache.CorruptFile`.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from lego_core.data.cache import CorruptFile, discard, expect, read_file
from lego_core.data.cold import natural_cold
from lego_core.data.io import warn
from lego_core.data.schema import SPLITS, Dataset, Impressions
from lego_core.core.fileio import atomic_write_folder
from lego_core.core.paths import cache_dir

FORMAT_VERSION = 2  # bump when a reader's output or the layout changes so old cache entries are ignored
READABLE_VERSIONS = (1, 2)  # 1: arrays.npz (zipped); 2: arrays/<name>.npy, memory-mapped, and cold.npy
ARRAYS = "arrays"  # the folder of .npy files (version 2)
COLD = "cold.npy"  # the natural cold mask, beside the arrays
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


def array_names(splits) -> list[str]:
    """The arrays a stored dataset holds (file stems under arrays/, or keys of an old arrays.npz)."""
    return ["users", "seq_offsets", "seq_items"] + [f"{s}.{n}" for s in splits for n in _IMPRESSION_FIELDS]


def write_dataset(dataset: Dataset, folder: Path) -> None:
    """Write arrays/, cold.npy, items.parquet and meta.json into an existing folder (callers make
    the folder atomic)."""
    arrays = {"users": np.asarray(dataset.users, dtype=str), "seq_offsets": dataset.seq_offsets,
              "seq_items": dataset.seq_items}
    for split, imps in dataset.splits.items():
        for name in _IMPRESSION_FIELDS:
            arrays[f"{split}.{name}"] = getattr(imps, name)
    if len(arrays["users"]) == 0:
        arrays["users"] = np.zeros(0, dtype="<U1")
    (folder / ARRAYS).mkdir()
    for key, value in arrays.items():
        np.save(folder / ARRAYS / f"{key}.npy", np.asarray(value), allow_pickle=False)
    if "train" in dataset.splits:
        np.save(folder / COLD, natural_cold(dataset), allow_pickle=False)
    dataset.items.to_parquet(folder / "items.parquet", index=False)
    write_meta(dataset, folder)


def write_meta(dataset: Dataset, folder: Path) -> None:
    """meta.json: name, splits, fields and info (all a registration sharing linked arrays changes)."""
    meta = {"format": FORMAT_VERSION, "name": dataset.name, "splits": list(dataset.splits),
            "text_fields": dataset.text_fields, "category_field": dataset.category_field,
            "info": _jsonable(dataset.info)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))


def _read_meta(path: Path) -> dict:
    meta = json.loads(path.read_text(encoding="utf-8"))
    expect(isinstance(meta, dict), path, "not a JSON object")
    expect(meta.get("format") in READABLE_VERSIONS, path, f"format {meta.get('format')!r}, expected {FORMAT_VERSION}")
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


def _check_arrays(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for key, value in arrays.items():
        kind = "U" if key == "users" else "iu"
        expect(value.ndim == 1 and value.dtype.kind in kind, path, f"array {key!r} has dtype {value.dtype} "
               f"and shape {value.shape}")
    return arrays


def _read_npz(path: Path, splits: list[str]) -> dict[str, np.ndarray]:
    """The arrays of a version-1 arrays.npz (read whole: a zip member cannot be mapped)."""
    wanted = array_names(splits)
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in wanted if k not in data.files]
        expect(not missing, path, f"lacks arrays {missing[:3]}")
        return _check_arrays(path, {k: data[k] for k in wanted})


def open_npy(path: Path) -> np.ndarray:
    """A stored .npy file as a read-only memory-mapped array (a plain ndarray view); CorruptFile
    when it is missing, truncated, not a .npy file or holds pickled objects."""
    def read(path: Path) -> np.ndarray:
        return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))
    return read_file(path, read)


def _read_npy(folder: Path, splits: list[str]) -> dict[str, np.ndarray]:
    return {k: _check_arrays(folder / f"{k}.npy", {k: open_npy(folder / f"{k}.npy")})[k] for k in array_names(splits)}


def _check_csr(path: Path, offsets: np.ndarray, values: np.ndarray, rows: int, what: str) -> None:
    expect(len(offsets) == rows + 1 and offsets[0] == 0 and offsets[-1] == len(values)
           and bool(np.all(np.diff(offsets) >= 0)), path, f"{what} offsets do not match their values")


def _in_range(values: np.ndarray, stop: int) -> bool:
    """All of `values` in [0, stop), in one pass (as unsigned, a negative index is past any stop)."""
    if len(values) == 0:
        return True
    if values.dtype.kind == "i":
        values = values.view(values.dtype.str.replace("i", "u"))
    return int(values.max()) < stop


def read_dataset(folder: Path) -> Dataset:
    """The Dataset stored by `write_dataset` (arrays loaded without pickle).

    Raises CorruptFile naming the file when one is missing, truncated, not what it should be,
    or inconsistent with the others (array lengths, index ranges)."""
    folder = Path(folder)
    meta = read_file(folder / "meta.json", _read_meta)
    if meta["format"] == 1:
        arrays = read_file(folder / "arrays.npz", lambda path: _read_npz(path, meta["splits"]))
    else:
        arrays = _read_npy(folder / ARRAYS, meta["splits"])

    def npz(key: str) -> Path:  # the file an inconsistency is reported in
        return folder / "arrays.npz" if meta["format"] == 1 else folder / ARRAYS / f"{key}.npy"

    items = read_file(folder / "items.parquet", pd.read_parquet)
    expect("item_id" in items.columns and items["item_id"].is_unique, folder / "items.parquet",
           "no unique 'item_id' column")
    n_items, n_users = len(items), len(arrays["users"])
    _check_csr(npz("seq_offsets"), arrays["seq_offsets"], arrays["seq_items"], n_users, "sequence")
    expect(_in_range(arrays["seq_items"], n_items), npz("seq_items"), "sequence items out of range")
    splits = {}
    lengths = np.diff(arrays["seq_offsets"])
    for s in meta["splits"]:
        imps = Impressions(*(arrays[f"{s}.{name}"] for name in _IMPRESSION_FIELDS))
        m = len(imps.ids)
        expect(all(len(v) == m for v in (imps.users, imps.times, imps.history_end)), npz(f"{s}.ids"),
               f"{s} impression arrays differ in length")
        expect(len(imps.labels) == len(imps.items), npz(f"{s}.labels"), f"{s} labels and items differ in length")
        _check_csr(npz(f"{s}.offsets"), imps.offsets, imps.items, m, f"{s} impression")
        expect(_in_range(imps.users, n_users), npz(f"{s}.users"), f"{s} indices out of range")
        expect(_in_range(imps.items, n_items), npz(f"{s}.items"), f"{s} indices out of range")
        expect(bool(np.all((imps.history_end >= 0) & (imps.history_end <= lengths[imps.users]))),
               npz(f"{s}.history_end"), f"{s} history ends out of range")
        splits[s] = imps
    cold = None
    if meta["format"] > 1 and "train" in splits:
        cold = open_npy(folder / COLD)
        expect(cold.dtype == bool and cold.shape == (n_items,), folder / COLD, f"holds {cold.dtype} {cold.shape}, "
               f"not {n_items} booleans")
    return Dataset(name=meta["name"], items=items, users=arrays["users"].astype(object),
                   seq_offsets=arrays["seq_offsets"], seq_items=arrays["seq_items"], splits=splits,
                   text_fields=meta["text_fields"], category_field=meta["category_field"], info=meta["info"],
                   cold=cold)


def probe_dataset(folder: Path) -> str:
    """"" when the stored dataset's files open (JSON parses, each .npy maps, the Parquet footer reads), else
    the reason naming the file. Cheap: for listings; `read_dataset` checks everything."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    try:
        meta = read_file(folder / "meta.json", _read_meta)
        if meta["format"] == 1:
            read_file(folder / "arrays.npz", lambda path: zipfile.ZipFile(path).close())
        else:
            for key in array_names(meta["splits"]):
                open_npy(folder / ARRAYS / f"{key}.npy")
        read_file(folder / "items.parquet", lambda path: pq.ParquetFile(path).close())
    except CorruptFile as exc:
        return str(exc)
    return ""


def cached_build(kind: str, sources: list[Path], options: dict, build: Callable[[], Dataset]) -> Dataset:
    """The processed dataset for (kind, sources, options): from the cache, else built and stored.
    A corrupt entry (any file missing, truncated or inconsistent) is reported in one line and rebuilt.
    Option "name" only labels the dataset: it is not part of the key, so registrations of one
    source under several names share one processed folder (`processed_folder`)."""
    name = options.get("name")
    options = {k: v for k, v in options.items() if k != "name"}
    key = fingerprint(kind, sources, options)
    folder = cache_dir("datasets", PROCESSED) / f"{kind}-{key}"
    dataset = None
    if os.path.lexists(folder):
        try:
            dataset = read_dataset(folder)
            dataset.info["cache"] = "hit"
        except CorruptFile as exc:
            warn(f"processed dataset cache: {exc}; rebuilding it")
            discard(folder)
    if dataset is None:
        dataset = build()
        dataset.info["fingerprint"] = key
        dataset.info["options"] = _jsonable(options)
        atomic_write_folder(folder, lambda tmp: write_dataset(dataset, tmp))
        dataset.info["cache"] = "miss"
    if name is not None:
        dataset.name = name
    return dataset


def processed_folder(key: object) -> Path | None:
    """The processed-cache folder of fingerprint `key` (a dataset's `info["fingerprint"]` as read),
    None when there is none: registrations hard-link its files rather than writing a copy."""
    if isinstance(key, str) and key:
        found = [f for f in cache_dir("datasets", PROCESSED).glob(f"*-{key}") if (f / "meta.json").is_file()]
        if found:
            return found[0]
    return None


def link_processed(source: Path, folder: Path) -> bool:
    """Hard-link the stored arrays, cold mask and items of processed folder `source` into the empty
    `folder` (meta.json excepted: the caller writes its own with `write_meta`). False, with nothing
    left behind, when the files cannot be linked (another file system, an old npz layout)."""
    names = [p.relative_to(source) for p in sorted(source.rglob("*")) if p.is_file() and p.name != "meta.json"]
    if not (source / ARRAYS).is_dir():
        return False
    try:
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.link(source / name, folder / name)
    except OSError:
        for name in names:
            discard(folder / name)
        discard(folder / ARRAYS)
        return False
    return True
