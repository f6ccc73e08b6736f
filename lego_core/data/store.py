"""The dataset store: datasets registered by name under cache/datasets/<name>/ (any format, uploaded
tables, MIND); `registration` adds one, this module keeps, lists, loads and removes them.

A registered folder holds `dataset.json` (kind, source, options, description, and the counts in
`summary`, so listings never load the dataset) and the processed dataset (arrays/*.npy,
cold.npy, items.parquet, meta.json); tables and uploads also keep copies of their source files in `sources/`
so other options (seed, negatives) can be re-derived. Registration validates by
loading fully before anything is written, then writes the folder atomically.
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lego_core.data.cache import CORRUPT_ERRORS, CorruptFile, describe
from lego_core.data.processed import (ARRAYS, PROCESSED, link_processed, probe_dataset, read_dataset, write_dataset,
                                      write_meta)
from lego_core.data.io import CONTENT_GAPS
from lego_core.data.schema import Dataset
from lego_core.core.errors import DataError
from lego_core.core.fileio import atomic_write_folder, locked
from lego_core.core.paths import cache_dir

MANIFEST = "dataset.json"
RESERVED = ("ml-100k", "synthetic")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # used with fullmatch: no trailing newline


def check_name(name: str) -> str:
    """A valid registration name (letters, digits, '_', '.', '-'; not a built-in name)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in RESERVED or name == PROCESSED:
        raise DataError(f"dataset name {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-' "
                        f"(starting with a letter or digit), other than {list(RESERVED)}")
    return name


def folder_of(name: str) -> Path:
    return cache_dir("datasets") / name


def taken(name: str) -> DataError:
    """The refusal to register over an existing dataset (the CLI's and Python's way to replace it)."""
    return DataError(f"a dataset named {name!r} is already registered; choose another name (--name) or replace it "
                     "with `datasets add --overwrite` (overwrite=True from Python)")


def _read_manifest(path: Path) -> dict:
    """The manifest at `path`; DataError naming the file when it is not a readable manifest."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str) or \
                not isinstance(doc.get("options", {}), dict):
            raise ValueError("not a manifest object with 'kind' and 'options'")
    except CORRUPT_ERRORS as exc:
        raise DataError(f"{path} is unreadable ({describe(exc)}); register dataset {path.parent.name!r} again "
                        "(or delete its folder)") from None
    return doc


def _shape_problem(folder: Path, summary: object) -> str:
    """Why the stored arrays disagree with the counts recorded at registration ("" when they agree
    or no counts were recorded). Reads only the array headers, so listings stay cheap at any size."""
    if not isinstance(summary, dict):
        return ""
    expected = {"users": summary.get("users"), "seq_items": summary.get("clicks")}
    if isinstance(summary.get("users"), int):
        expected["seq_offsets"] = summary["users"] + 1
    expected.update({f"{k[:-len('_impressions')]}.ids": v for k, v in summary.items() if k.endswith("_impressions")})

    def header_shape(handle) -> tuple:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        return read_header(handle)[0]

    old = folder / "arrays.npz"
    path = old if old.is_file() else folder / ARRAYS
    try:
        with contextlib.ExitStack() as stack:
            archive = stack.enter_context(zipfile.ZipFile(path)) if path == old else None  # opened once
            stored = set(archive.namelist()) if archive is not None else None
            for key, count in expected.items():
                if not isinstance(count, int) or (stored is not None and f"{key}.npy" not in stored):
                    continue
                with (archive.open(f"{key}.npy") if archive is not None else open(path / f"{key}.npy", "rb")) as handle:
                    shape = header_shape(handle)
                if shape[:1] != (count,):
                    where = path if archive is not None else path / f"{key}.npy"
                    return (f"{where} does not match the counts recorded at registration ({key} has "
                            f"{shape[0] if shape else 0:,} entries, expected {count:,})")
    except CORRUPT_ERRORS as exc:
        return f"{path} is unreadable ({describe(exc)})"
    return ""


def manifests() -> list[dict]:
    """The manifest of every registered dataset, sorted by name. An unreadable one is listed with
    `loadable` False and the `reason`, as is one whose processed files do not open."""
    out = []
    for path in sorted(cache_dir("datasets").glob(f"*/{MANIFEST}")):
        if path.parent.name.startswith("."):
            continue
        try:
            manifest = _read_manifest(path)
            reason = probe_dataset(path.parent) or _shape_problem(path.parent, manifest.get("summary"))
            if reason:
                reason = f"{reason}; register it again"
        except DataError as exc:
            manifest, reason = {"kind": "?", "description": "unreadable registration"}, str(exc)
        manifest["name"] = path.parent.name
        manifest["loadable"] = not reason
        manifest["reason"] = reason
        out.append(manifest)
    return out


def manifest_path(name: str) -> Path | None:
    """Where the manifest of a dataset called `name` lives (None for a name that cannot be registered)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name == PROCESSED:
        return None
    return folder_of(name) / MANIFEST


def manifest(name: str) -> dict | None:
    """The manifest of registered dataset `name`, None when there is none; DataError naming the
    file when it exists but cannot be read."""
    path = manifest_path(name)
    if path is None or not path.is_file():
        return None
    return _read_manifest(path)


def register(name: str, kind: str, dataset: Dataset, options: dict, source: dict, description: str,
             copies: dict[str, Path] | None = None, overwrite: bool = False, processed: Path | None = None) -> Dataset:
    """Store an already-validated dataset under cache/datasets/<name>/ (atomic). `processed`: the
    processed-cache folder `dataset` was read from, whose files are hard-linked rather than written
    again, so every registration of one source shares one copy on disk (deleting one registration
    leaves the others whole; damage written into a shared file shows in all of them)."""
    check_name(name)
    target = folder_of(name)
    dataset.name = name
    dataset.info["fingerprint"] = f"registered-{name}-{time.time_ns()}"
    doc = {"kind": kind, "description": description, "options": options, "source": source,
           "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "summary": dataset.summary(),
           "protocol": dataset.info.get("protocol"), CONTENT_GAPS: dataset.info.get(CONTENT_GAPS) or []}
    for stored in copies or {}:
        if Path(stored).is_absolute() or ".." in Path(stored).parts:
            raise DataError(f"source copy name {stored!r} must be a relative path inside the registration")

    def fill(tmp: Path) -> None:
        if processed is not None and link_processed(processed, tmp):
            write_meta(dataset, tmp)
        else:
            write_dataset(dataset, tmp)
        if copies:
            (tmp / "sources").mkdir()
            for stored, original in copies.items():
                (tmp / "sources" / stored).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(original, tmp / "sources" / stored)
        (tmp / MANIFEST).write_text(json.dumps(doc, indent=1, default=str))

    # one registration commit at a time: of two registering one name at once, one wins, the other is refused
    with locked(target.parent / ".register.lock"):
        if target.exists() and not overwrite:
            raise taken(name)
        atomic_write_folder(target, fill, replace=overwrite)
    return dataset


def load(name: str, options: dict, rebuild: Callable[[Path, dict, dict], Dataset]) -> Dataset:
    """A registered dataset: the stored one when `options` match its own, else `rebuild(folder,
    manifest, options)` from its sources."""
    doc = manifest(name)
    if doc is None:
        raise DataError(f"no dataset named {name!r} is registered")
    folder = folder_of(name)
    stored = doc.get("options", {})
    unknown = [k for k in options if k not in stored]
    if unknown:
        raise DataError(f"dataset {name!r} ({doc['kind']}) takes options {sorted(stored)}, not {unknown}")
    if all(options[k] == stored[k] for k in options):
        try:
            dataset = read_dataset(folder)
        except CorruptFile as exc:
            raise DataError(f"dataset {name!r}: {exc}; register it again (its files are left as they are)") from None
        dataset.info["cache"] = "hit"
        return dataset
    return rebuild(folder, doc, {**stored, **options})


def delete(name: str) -> None:
    """Remove a registered dataset's folder."""
    check_name(name)
    if not (folder_of(name) / MANIFEST).is_file():
        raise DataError(f"no dataset named {name!r} is registered")
    shutil.rmtree(folder_of(name))
