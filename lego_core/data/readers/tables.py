"""Generic tables: an items CSV/Parquet (an id column + any text/categorical columns) and an
interactions CSV/Parquet (user, item, timestamp, optional label), split leave-last-out.

Interaction rows with label 0 are non-clicks and are dropped before the split (the protocol
samples its own negatives); rows with label 1, or every row when there is no label column, are
clicks. Timestamps are unix seconds (numbers) or a datetime column of a Parquet file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from lego_core.data.arrays import as_str_ids
from lego_core.data.processed import cached_build
from lego_core.data.io import (check_columns, check_scalars, check_unique, line_of, read_table, text_column,
                               to_unix_seconds)
from lego_core.data.leave_last_out import check_options, split_log
from lego_core.data.schema import Dataset
from lego_core.core.errors import DataError


@dataclass
class TableMapping:
    """Which columns mean what. `text` None = every items column but the id and category."""

    item_id: str = "item_id"  # id column of the items table
    text: list[str] | None = None  # free-text columns (tokenized for content models)
    category: str | None = None  # optional categorical column (colours maps)
    user: str = "user_id"  # interactions: user column
    item: str = "item_id"  # interactions: item column
    timestamp: str = "timestamp"  # interactions: unix seconds
    label: str | None = None  # interactions: optional 0/1 click column

    @classmethod
    def from_dict(cls, mapping: "dict | TableMapping | None") -> "TableMapping":
        """A mapping from a dict; an unknown key raises DataError listing the valid ones."""
        if isinstance(mapping, TableMapping):
            return mapping
        mapping = dict(mapping or {})
        names = [f.name for f in fields(cls)]
        unknown = [k for k in mapping if k not in names]
        if unknown:
            raise DataError(f"unknown table mapping key(s) {unknown}; valid keys are {names}")
        if isinstance(mapping.get("text"), str):
            mapping["text"] = [mapping["text"]]
        return cls(**mapping)

    def to_dict(self) -> dict:
        return asdict(self)


def _id_column(values: pd.Series) -> np.ndarray:
    """Ids as str; integral floats (Parquet ints with gaps) lose their '.0' so they match."""
    if pd.api.types.is_float_dtype(values) and values.notna().all() and (values % 1 == 0).all():
        values = values.astype(np.int64)
    return as_str_ids(values.to_numpy(dtype=object))


def read_items(path: Path, mapping: TableMapping) -> tuple[pd.DataFrame, list[str]]:
    """Items DataFrame (`item_id` first, then the named columns as strings) and its text fields."""
    frame = read_table(path)
    check_columns(frame, [mapping.item_id], path, "name the id column in the mapping (item_id=...)")
    check_scalars(frame[mapping.item_id], path, mapping.item_id, header=True)
    if frame[mapping.item_id].isna().any() or (frame[mapping.item_id].astype(str).str.strip() == "").any():
        row = int(np.flatnonzero((frame[mapping.item_id].isna() |
                                  (frame[mapping.item_id].astype(str).str.strip() == "")).to_numpy())[0])
        raise DataError(f"{path}: column {mapping.item_id!r} line {line_of(row, True)} has an empty item id")
    others = [c for c in frame.columns if c != mapping.item_id]
    text = list(mapping.text) if mapping.text is not None else [c for c in others if c != mapping.category]
    wanted = text + ([mapping.category] if mapping.category else [])
    check_columns(frame, wanted, path, "fix the text/category column names in the mapping")
    ids = _id_column(frame[mapping.item_id])
    check_unique(pd.Series(ids), path, mapping.item_id, header=True)
    items = pd.DataFrame({"item_id": ids})
    for col in dict.fromkeys(others):
        if col == "item_id":
            raise DataError(f"{path}: column 'item_id' is reserved for the id; rename it or use it as the "
                            f"id column (mapping item_id='item_id')")
        items[col] = text_column(frame[col]).to_numpy()
    return items, [t for t in text if t != "item_id"]


def read_clicks(path: Path, mapping: TableMapping) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(user ids, item ids, unix times, non-click rows dropped) from the interactions table."""
    frame = read_table(path)
    needed = [mapping.user, mapping.item, mapping.timestamp] + ([mapping.label] if mapping.label else [])
    check_columns(frame, needed, path, "name the user/item/timestamp(/label) columns in the mapping")
    for col in needed:
        check_scalars(frame[col], path, col, header=True)
    for col in (mapping.user, mapping.item):
        empty = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            raise DataError(f"{path}: column {col!r} line {line_of(row, True)} is empty")
    times = to_unix_seconds(frame[mapping.timestamp], path, mapping.timestamp, header=True)
    keep = np.ones(len(frame), dtype=bool)
    if mapping.label:
        labels = pd.to_numeric(frame[mapping.label], errors="coerce")
        bad = ~labels.isin([0, 1]).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: column {mapping.label!r} line {line_of(row, True)} is "
                            f"{frame[mapping.label].iloc[row]!r}; labels must be 0 (not clicked) or 1 (clicked)")
        keep = labels.to_numpy() == 1
        if not keep.any():
            raise DataError(f"{path}: every row has {mapping.label!r} = 0; at least some rows must be clicks (1)")
    return (_id_column(frame[mapping.user][keep]), _id_column(frame[mapping.item][keep]), times[keep],
            int((~keep).sum()))


def load_tables(items_file: Path, interactions_file: Path, mapping: "dict | TableMapping | None" = None,
                name: str = "tables", negatives: int = 99, seed: int = 0, cache: bool = True) -> Dataset:
    """A Dataset from an items table and an interactions table (leave-last-out, cached)."""
    mapping = TableMapping.from_dict(mapping)
    negatives, seed = check_options(negatives, seed, name)
    items_file, interactions_file = Path(items_file), Path(interactions_file)

    def build() -> Dataset:
        items, text = read_items(items_file, mapping)
        users, item_ids, times, non_clicks = read_clicks(interactions_file, mapping)
        return split_log(name, items, users, item_ids, times, negatives=negatives, seed=seed, text_fields=text,
                         category_field=mapping.category,
                         info={"reader": "tables", "source": str(interactions_file),
                               "non_clicks_dropped": non_clicks, "mapping": mapping.to_dict()},
                         source=str(interactions_file))

    if not cache:
        return build()
    for f in (items_file, interactions_file):
        if not f.is_file():
            raise DataError(f"{f} not found")
    options = {"name": name, "negatives": negatives, "seed": seed, "mapping": mapping.to_dict()}
    return cached_build("tables", [items_file, interactions_file], options, build)
