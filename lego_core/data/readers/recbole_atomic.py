"""RecBole atomic files: `<name>.inter` + `<name>.item` (+ optional `<name>.user`), tab-separated.

Documentation: RecBole's "Atomic Files" page (https://recbole.io/docs/user_guide/data/atomic_files.html)
and Zhao et al., "RecBole: Towards a Unified, Comprehensive and Efficient Framework for
Recommendation Algorithms", CIKM 2021. The first line names each field with its type,
`name:type`, type one of token, token_seq (space-separated tokens), float, float_seq; e.g.
`user_id:token	item_id:token	rating:float	timestamp:float`. Fields are tab-separated and
unquoted. RecBole's default field names are used: user_id, item_id, timestamp, label.

Items: the rows of `.item` (`item_id` plus every token / token_seq field as a text column; float
fields are dropped); category = the first token of the first field named like a class, genre or
category. `.user` features are not read (the schema has no user features). Protocol: every
`.inter` row is a click unless a `label` field says 0; per user, leave-last-out by `timestamp`
(file order, with impression times 0, when there is none): last = test, second to last = valid,
`negatives` sampled unseen items each. An interaction naming an item `.item` lacks is an error.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lego_core.data.arrays import as_str_ids
from lego_core.data.processed import cached_build
from lego_core.data.formats import Format
from lego_core.data.io import (check_known, check_unique, first_short_line, line_of, read_delimited, require_file,
                               to_unix_seconds)
from lego_core.data.leave_last_out import check_options, split_log
from lego_core.data.schema import LEAVE_LAST_OUT, Dataset
from lego_core.core.errors import DataError

TYPES = ("token", "token_seq", "float", "float_seq")
CATEGORY_HINTS = ("class", "genre", "categor")
LAYOUT = "a RecBole atomic folder holds <name>.inter and <name>.item (tab-separated, header fields typed " \
         "name:token / token_seq / float / float_seq)"
PROTOCOL = "every .inter row is a click (rows with label 0 are not); per user, leave-last-out by timestamp " \
           "(file order when there is none): last = test, second to last = valid, each with `negatives` sampled " \
           "unseen items"


def locate(path: Path) -> tuple[Path, Path]:
    """(.inter, .item) of a folder holding one pair, or of a .inter/.item file; DataError naming what
    is missing otherwise."""
    path = Path(path)
    if path.is_dir():
        inters = sorted(p for p in path.glob("*.inter") if p.is_file())
        if len(inters) != 1:
            several = f"it holds {[p.name for p in inters]}: pass one .inter file" if inters else LAYOUT
            raise DataError(f"{path}: {'no' if not inters else 'more than one'} .inter file; {several}")
        path = inters[0]
    elif path.suffix not in (".inter", ".item"):
        raise DataError(f"{path} is not a RecBole .inter or .item file; {LAYOUT}")
    inter, item = path.with_suffix(".inter"), path.with_suffix(".item")
    require_file(inter, LAYOUT)
    require_file(item, f"the item file of {inter.name} ({item.stem}.item: item_id:token plus text fields)")
    return inter, item


def _header(path: Path) -> list[str]:
    with open(path, "rb") as handle:
        return handle.readline(10_000).decode("utf-8", "replace").rstrip("\r\n").split("\t")


def detect(path: Path) -> bool:
    try:
        inter, _ = locate(path)
    except DataError:
        return False
    return all(":" in field for field in _header(inter))


def read_atomic(path: Path, required: list[str], what: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """An atomic file as strings with plain field names, and each field's type."""
    frame = read_delimited(require_file(path, what), "\t", header=True)
    types = {}
    for column in frame.columns:
        field, _, kind = str(column).partition(":")
        if kind not in TYPES:
            raise DataError(f"{path} line 1: field {column!r} has no type among {list(TYPES)}; RecBole headers "
                            f"are name:type, e.g. item_id:token")
        types[field.strip()] = kind
    frame.columns = list(types)
    missing = [f for f in required if f not in types]
    if missing:
        raise DataError(f"{path} lacks field(s) {missing}; its header has {list(types)}; {what}")
    line = first_short_line(path, "\t", len(types))
    if line:
        raise DataError(f"{path} line {line} has fewer than the {len(types)} tab-separated fields of the header")
    return frame, types


def read_items(path: Path) -> pd.DataFrame:
    frame, types = read_atomic(path, ["item_id"], "the .item file needs item_id:token")
    check_unique(frame["item_id"], path, "item_id", header=True)
    items = pd.DataFrame({"item_id": as_str_ids(frame["item_id"].to_numpy(dtype=object))})
    text = [f for f, kind in types.items() if f != "item_id" and kind in ("token", "token_seq")]
    for field in text:
        items[field] = frame[field].str.strip().to_numpy(dtype=object)
    hinted = [f for f in text if any(h in f.lower() for h in CATEGORY_HINTS)]
    if hinted:
        first = items[hinted[0]].str.split(" ").str[0]
        items["category"] = first.where(first != "", "unknown").to_numpy(dtype=object)
    return items


def read_clicks(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool, int]:
    """(user ids, item ids, times, 0-based lines, has timestamps, label-0 rows dropped) of the clicks."""
    frame, types = read_atomic(path, ["user_id", "item_id"], "the .inter file needs user_id:token and item_id:token")
    keep = np.ones(len(frame), dtype=bool)
    if "label" in types:
        labels = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=float)
        if np.isnan(labels).any():
            row = int(np.flatnonzero(np.isnan(labels))[0])
            raise DataError(f"{path}: field 'label' line {line_of(row, True)} is {frame['label'].iloc[row]!r}, "
                            f"not a number; labels are 1 (click) or 0")
        keep = labels > 0
    if "timestamp" in types:
        times = to_unix_seconds(frame["timestamp"], path, "timestamp", header=True)
    else:
        times = np.arange(len(frame), dtype=np.int64)  # file order
    rows = np.flatnonzero(keep)
    return (as_str_ids(frame["user_id"].to_numpy(dtype=object)[rows]),
            as_str_ids(frame["item_id"].to_numpy(dtype=object)[rows]),
            times[rows], rows, "timestamp" in types, int((~keep).sum()))


def load(path: Path, name: str | None = None, negatives: int = 99, seed: int = 0) -> Dataset:
    """RecBole atomic files as a leave-last-out dataset (cached)."""
    negatives, seed = check_options(negatives, seed, "recbole")
    inter_file, item_file = locate(path)
    name = name or inter_file.stem

    def build() -> Dataset:
        items = read_items(item_file)
        users, item_ids, times, rows, timed, dropped = read_clicks(inter_file)
        check_known(item_ids, pd.Index(items["item_id"]), rows, inter_file, True, "item_id", item_file,
                    f"add the item to {item_file.name} or remove those rows")
        text = [c for c in items.columns if c not in ("item_id", "category")]
        info = {"reader": "recbole", "source": str(inter_file), "label_0_rows_dropped": dropped,
                "order": "timestamp" if timed else "file order"}
        dataset = split_log(name, items, users, item_ids, times, negatives=negatives, seed=seed, text_fields=text,
                            category_field="category" if "category" in items.columns else None, info=info,
                            source=str(inter_file))
        if not timed:
            for imps in dataset.splits.values():
                imps.times[:] = 0
        return dataset

    return cached_build("recbole", [inter_file, item_file], {"name": name, "negatives": negatives, "seed": seed},
                        build)


FORMATS = (Format("recbole", "RecBole atomic files (<name>.inter + <name>.item)", LAYOUT, PROTOCOL, detect, load,
                  (("negatives", 99), ("seed", 0)), scheme=LEAVE_LAST_OUT),)
