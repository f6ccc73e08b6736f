"""Generated item fields: saving, listing and joining fields written for a dataset's items by a
generator (today the LLM of `lego_core.lm.generation`).

A generated field is a parquet sidecar `<field>.parquet` (item_id, field) under
`cache_dir("augment", <dataset key>)`. `load_augmented(dataset)` joins every saved field into a
freshly loaded dataset's items so content operators can select it like any other field; original
columns are never replaced.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from lego_core.data.cache import CorruptFile, discard, expect, read_file
from lego_core.data.io import warn
from lego_core.data.schema import Dataset
from lego_core.core.errors import DataError
from lego_core.core.fileio import atomic_write_bytes
from lego_core.core.paths import cache_dir

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # used with fullmatch: no trailing newline


def dataset_key(dataset: Dataset) -> str:
    """Folder name of a dataset's sidecars: its name + a hash of its item ids (options such as
    the negative count or seed do not change the items, so they share the generated fields)."""
    ids = "\n".join(map(str, dataset.items["item_id"].tolist()))
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", dataset.name)[:40] or "dataset"
    return f"{safe}-{hashlib.sha256(ids.encode()).hexdigest()[:16]}"


def sidecar_dir(dataset: Dataset) -> Path:
    """The folder holding this dataset's generated fields (created when missing)."""
    return cache_dir("augment", dataset_key(dataset))


def field_path(dataset: Dataset, field: str) -> Path:
    """The sidecar file of one generated field."""
    return sidecar_dir(dataset) / f"{field}.parquet"


def check_field(dataset: Dataset, field: str) -> None:
    """DataError unless `field` can name a new generated field of `dataset`: a plain identifier
    that is not one of its original item columns (regenerating a generated field is allowed)."""
    if not isinstance(field, str) or not FIELD_NAME.fullmatch(field):
        raise DataError(f"augment field name {field!r} is not allowed; use letters, digits and _ (e.g. description)")
    if field in dataset.items.columns and field not in dataset.info.get("augmented", []):
        raise DataError(f"augment field {field!r} is already an item column of {dataset.name}; "
                        f"choose a new name such as {field}_gen")


def augmented_fields(dataset: Dataset) -> list[str]:
    """Names of the generated fields saved for this dataset."""
    return sorted(p.stem for p in sidecar_dir(dataset).glob("*.parquet") if FIELD_NAME.fullmatch(p.stem))


def _read_sidecar(path: Path, field: str) -> dict[str, str]:
    """item_id -> generated text of a sidecar; CorruptFile naming it when it cannot be used."""
    side = read_file(path, pd.read_parquet)
    expect("item_id" in side.columns and field in side.columns, path,
           f"lacks column(s) {[c for c in ('item_id', field) if c not in side.columns]}")
    return read_file(path, lambda _: dict(zip(side["item_id"].astype(str), side[field].astype(str))))


def with_field(dataset: Dataset, field: str, values: list[str]) -> Dataset:
    """`dataset` with item column `field` set to `values` (one per item) and recorded as generated."""
    items = dataset.items.copy()
    items[field] = np.asarray(values, dtype=object)
    info = {**dataset.info, "augmented": sorted(set(dataset.info.get("augmented", [])) | {field})}
    return replace(dataset, items=items, info=info)


def save_field(dataset: Dataset, field: str, values: list[str]) -> Path:
    """Write one generated field (one text per item, in item order) as this dataset's sidecar."""
    path = field_path(dataset, field)
    frame = pd.DataFrame({"item_id": dataset.items["item_id"].astype(str).to_numpy(), field: values})
    atomic_write_bytes(path, frame.to_parquet(index=False))
    return path


def load_augmented(dataset: Dataset) -> Dataset:
    """`dataset` with every saved generated field joined into `items` by item_id ('' where an
    item has none). Original columns are never replaced. A corrupt sidecar is reported in one line
    and removed (the answers stay in the generator's store: `augment` writes it again without
    regenerating)."""
    fields = [f for f in augmented_fields(dataset) if f not in dataset.items.columns]
    if not fields:
        return dataset
    items = dataset.items.copy()
    ids = items["item_id"].astype(str)
    joined = []
    for field in fields:
        path = field_path(dataset, field)
        try:
            values = _read_sidecar(path, field)
        except CorruptFile as exc:
            warn(f"generated field {field!r}: {exc}; removed it, run `python -m lego_core augment {dataset.name} "
                 f"--field {field}` again to restore it")
            discard(path)
            continue
        items[field] = ids.map(values).fillna("").astype(str).to_numpy()
        joined.append(field)
    if not joined:
        return dataset
    info = {**dataset.info, "augmented": sorted(set(dataset.info.get("augmented", [])) | set(joined))}
    return replace(dataset, items=items, info=info)
