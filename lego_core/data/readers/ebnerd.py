"""EB-NeRD reader (Ekstra Bladet News Recommendation Dataset, RecSys Challenge 2024).

EB-NeRD (Kruse et al., "EB-NeRD: A Large-Scale Dataset for News Recommendation", RecSys
Challenge 2024; https://recsys.eb.dk) ships, per size (demo, small, large), `articles.parquet`
and the folders `train/` and `validation/`, each with `behaviors.parquet` and `history.parquet`:

- articles: `article_id` (int), `title`, `subtitle`, `body` (Danish), `category_str`,
  `subcategory` (list of ints), `published_time`, `url`, ...;
- behaviors (one row per impression): `impression_id`, `user_id`, `impression_time`,
  `article_ids_inview` (list: the articles seen), `article_ids_clicked` (list), ...;
- history (one row per user): `user_id`, `article_id_fixed` (list), `impression_time_fixed`
  (list of click times), ...: the 21 days of clicks before the split's behaviour period.

Items: `item_id` (the article id as text), `title`, `subtitle`, `body`, `category`
(category_str), `subcategory` (ids joined by spaces), `published_time`, `url`; the text fields
are title and subtitle. Feedback: every in-view article is a candidate, labelled 1 when it is in
`article_ids_clicked`. A user's sequence merges the clicks of the user's history rows of both
folders (time order, identical (time, article) pairs once); an impression of a folder sees the
clicks up to the last one of that folder's history row (`history_end`), so training impressions
never see the validation period. Splits: train -> `train`; validation impressions split by
`numpy.random.default_rng(seed).permutation`, first floor(M/2) -> `valid`, rest -> `test`.
Validation impression ids are shifted past the train ones when they overlap
(`info["validation_id_offset"]`). Unknown article ids are dropped and counted (warning); the
official test set (no clicks) is not read.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lego_core.data.arrays import as_str_ids, offsets_from_sizes
from lego_core.data.processed import cached_build
from lego_core.data.dev_split import known_candidates, split_dev
from lego_core.data.formats import Format
from lego_core.data.io import int_option, require_file, to_unix_seconds, warn
from lego_core.data.schema import IMPRESSIONS, Dataset, Impressions
from lego_core.core.errors import DataError

LAYOUT = ("an EB-NeRD folder holds articles.parquet, train/ and validation/, each with behaviors.parquet "
          "and history.parquet")
ARTICLE_COLUMNS = ["article_id", "title"]
OPTIONAL_ARTICLE_COLUMNS = ["subtitle", "body", "category_str", "subcategory", "published_time", "url"]
BEHAVIOR_COLUMNS = ["impression_id", "user_id", "impression_time", "article_ids_inview", "article_ids_clicked"]
HISTORY_COLUMNS = ["user_id", "article_id_fixed", "impression_time_fixed"]
SPLIT_FOLDERS = ("train", "validation")


def is_ebnerd_folder(root: Path) -> bool:
    root = Path(root)
    return (root / "articles.parquet").is_file() and all(
        (root / s / f).is_file() for s in SPLIT_FOLDERS for f in ("behaviors.parquet", "history.parquet"))


def read_parquet(path: Path, columns: list[str], optional: list[str] = ()) -> pa.Table:
    """The columns of a Parquet file, or DataError naming the file and what is wrong."""
    require_file(path, LAYOUT)
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty: it should be the EB-NeRD Parquet file")
    try:
        handle = pq.ParquetFile(path)
        names = handle.schema_arrow.names
    except Exception as exc:  # pyarrow raises several unrelated types for a file that is not Parquet
        reason = re.sub(r"^Could not open Parquet input source '[^']*': ", "", " ".join(str(exc).split()))
        raise DataError(f"{path} is not a readable Parquet file ({reason}); download it again") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; it has {names}")
    table = handle.read(columns=list(columns) + [c for c in optional if c in names])
    if table.num_rows == 0:
        raise DataError(f"{path} has no rows")
    return table


def _ints(table: pa.Table, column: str, path: Path) -> np.ndarray:
    values = table.column(column)
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)) or values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0]) if values.null_count else 0
        raise DataError(f"{path}: column {column!r} must hold integer ids (row {row + 1}: {values[row].as_py()!r})")
    numbers = values.to_numpy()
    if pa.types.is_floating(values.type):
        bad = ~np.isfinite(numbers) | (numbers % 1 != 0) | (np.abs(numbers) >= 2.0 ** 63)
        if bad.any():  # NaN would become INT64_MIN silently
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: column {column!r} row {row + 1} holds {float(numbers[row])}, not an integer id; "
                            "fix or drop that row")
    return numbers.astype(np.int64)


def _flat(table: pa.Table, column: str, path: Path) -> tuple[np.ndarray, pa.Array]:
    """A list column -> (row of each element, flat elements)."""
    values = table.column(column).combine_chunks()
    if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
        raise DataError(f"{path}: column {column!r} must hold lists (it holds {values.type}); use the EB-NeRD files "
                        "as released")
    return pc.list_parent_indices(values).to_numpy().astype(np.int64), pc.list_flatten(values)


def _lookup(ids: pa.Array, known: pd.Index, path: Path, column: str) -> np.ndarray:
    if not pa.types.is_integer(ids.type):
        raise DataError(f"{path}: column {column!r} must hold lists of integer article ids (it holds {ids.type})")
    return known.get_indexer(ids.to_numpy(zero_copy_only=False)).astype(np.int64)


def read_articles(path: Path) -> tuple[pd.DataFrame, pd.Index]:
    """articles.parquet -> (items frame, index of the integer article ids)."""
    table = read_parquet(path, ARTICLE_COLUMNS, OPTIONAL_ARTICLE_COLUMNS)
    ids = _ints(table, "article_id", path)
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        raise DataError(f"{path}: duplicate article_id {ids[rows[0]]} (rows {(rows[:5] + 1).tolist()}); each "
                        "article must appear once")
    items = pd.DataFrame({"item_id": as_str_ids(ids)})
    for out, col in (("title", "title"), ("subtitle", "subtitle"), ("body", "body"), ("category", "category_str"),
                     ("subcategory", "subcategory"), ("published_time", "published_time"), ("url", "url")):
        if col not in table.column_names:
            items[out] = ""
            continue
        values = table.column(col).combine_chunks()
        if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            values = pc.binary_join(pc.cast(values, pa.list_(pa.string())), " ")
        items[out] = pc.cast(values, pa.string()).fill_null("").to_numpy(zero_copy_only=False).astype(object)
    return items, pd.Index(ids)


def _history_events(path: Path, known: pd.Index, user_index: pd.Index, info: dict, split: str):
    """(user code, unix time, item index) of every click in a history.parquet, and each user's last time."""
    table = read_parquet(path, HISTORY_COLUMNS)
    users = user_index.get_indexer(_ints(table, "user_id", path))
    rows, articles = _flat(table, "article_id_fixed", path)
    time_rows, stamps = _flat(table, "impression_time_fixed", path)
    if len(time_rows) != len(rows) or not np.array_equal(time_rows, rows):
        sizes = np.bincount(rows, minlength=table.num_rows) - np.bincount(time_rows, minlength=table.num_rows)
        row = int(np.flatnonzero(sizes)[0]) if sizes.any() else 0
        raise DataError(f"{path} row {row + 1}: 'article_id_fixed' and 'impression_time_fixed' differ in length; "
                        "each click needs one time")
    times = to_unix_seconds(pd.Series(stamps.to_pandas()), path, "impression_time_fixed", False)
    items = _lookup(articles, known, path, "article_id_fixed")
    info[f"{split}_unknown_history_items_dropped"] = int((items < 0).sum())
    info[f"{split}_history_users_without_impressions"] = int((users < 0).sum())
    keep = (items >= 0) & (users[rows] >= 0)
    if (items < 0).any():
        warn(f"{path}: dropped {int((items < 0).sum())} history clicks naming unknown articles")
    last = np.full(len(user_index), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, users[rows][keep], times[keep])
    return users[rows][keep], times[keep], items[keep], last


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """values in sorted_set, by binary search (np.isin hashes int64 keys slowly)."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def _impressions(path: Path, known: pd.Index, info: dict, split: str) -> tuple[np.ndarray, dict]:
    """behaviors.parquet -> (user ids, the Impressions arrays but users and history ends)."""
    table = read_parquet(path, BEHAVIOR_COLUMNS)
    ids = _ints(table, "impression_id", path)
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        raise DataError(f"{path}: duplicate impression_id {ids[np.flatnonzero(dup)[0]]}; each impression must "
                        "appear once")
    user_ids = _ints(table, "user_id", path)
    times = to_unix_seconds(table.column("impression_time").to_pandas(), path, "impression_time", False)
    rows, inview = _flat(table, "article_ids_inview", path)
    click_rows, clicked = _flat(table, "article_ids_clicked", path)
    inview_np = inview.to_numpy(zero_copy_only=False).astype(np.int64)
    keys = (rows << 32) | (inview_np & 0xFFFFFFFF)
    click_keys = (click_rows << 32) | (clicked.to_numpy(zero_copy_only=False).astype(np.int64) & 0xFFFFFFFF)
    labels = _member(keys, np.sort(click_keys)).astype(np.int8)
    info[f"{split}_clicks_not_in_view"] = int((~_member(click_keys, np.sort(keys))).sum())
    items = _lookup(inview, known, path, "article_ids_inview")
    ok, sizes, keep = known_candidates(rows, items, len(ids), info, split, path, "in-view ids naming unknown articles",
                                       "no impression shows a known article in 'article_ids_inview'; check that "
                                       "articles.parquet comes from the same EB-NeRD release")
    return user_ids[keep], {"ids": ids[keep], "times": times[keep], "offsets": offsets_from_sizes(sizes[keep]),
                            "items": items[ok], "labels": labels[ok]}


def build_ebnerd(root: Path, seed: int = 0, name: str = "ebnerd") -> Dataset:
    """Read an EB-NeRD folder (uncached; see module doc)."""
    root = Path(root)
    seed = int_option(seed, "seed", 0, 2**63 - 1, "EB-NeRD")
    items, known = read_articles(root / "articles.parquet")
    info: dict = {"reader": "ebnerd", "source": str(root), "seed": int(seed),
                  "note": "in-view = candidates, clicked = 1; history = the user's history.parquet clicks; "
                          "validation impressions split 50/50 into valid/test by a seeded permutation"}
    parts = [_impressions(root / s / "behaviors.parquet", known, info, s) for s in SPLIT_FOLDERS]
    offset = 0
    if _member(parts[1][1]["ids"], np.sort(parts[0][1]["ids"])).any():
        offset = int(parts[0][1]["ids"].max() - parts[1][1]["ids"].min() + 1)
        parts[1][1]["ids"] = parts[1][1]["ids"] + offset
    info["validation_id_offset"] = offset
    user_codes, uniques = pd.factorize(np.concatenate([p[0] for p in parts]))
    user_index = pd.Index(uniques)
    events = [_history_events(root / s / "history.parquet", known, user_index, info, s) for s in SPLIT_FOLDERS]
    users = np.concatenate([e[0] for e in events])
    times = np.concatenate([e[1] for e in events])
    item_idx = np.concatenate([e[2] for e in events])
    order = np.lexsort((item_idx, times, users))
    users, times, item_idx = users[order], times[order], item_idx[order]
    first = np.ones(len(users), dtype=bool)
    first[1:] = (np.diff(users) != 0) | (np.diff(times) != 0) | (np.diff(item_idx) != 0)
    users, times, item_idx = users[first], times[first], item_idx[first]
    seq_offsets = offsets_from_sizes(np.bincount(users, minlength=len(user_index)))
    t0 = int(times.min()) if len(times) else 0
    span = (int(times.max()) - t0 + 2) if len(times) else 1
    seq_keys = users * span + (times - t0)

    splits, start = {}, 0
    for (user_ids, arrays), (_, _, _, last) in zip(parts, events):
        codes = user_codes[start:start + len(user_ids)].astype(np.int64)
        start += len(user_ids)
        cutoff = last[codes]
        has = cutoff > np.iinfo(np.int64).min
        bound = codes * span + np.clip(cutoff - t0, -1, span - 1)
        ends = np.where(has, np.searchsorted(seq_keys, bound, side="right") - seq_offsets[codes], 0)
        splits[len(splits)] = Impressions(ids=arrays["ids"], users=codes, times=arrays["times"],
                                          history_end=ends.astype(np.int64), offsets=arrays["offsets"],
                                          items=arrays["items"], labels=arrays["labels"])
    train, dev = splits[0], splits[1]
    return Dataset(name=name, items=items, users=as_str_ids(uniques), seq_offsets=seq_offsets,
                   seq_items=item_idx.astype(np.int64), splits=split_dev(train, dev, seed, info),
                   text_fields=["title", "subtitle"], category_field="category", info=info)


def load_ebnerd(root: Path, seed: int = 0, name: str = "ebnerd") -> Dataset:
    """An EB-NeRD folder as a Dataset, cached by its five files + options."""
    root = Path(root)
    seed = int_option(seed, "seed", 0, 2**63 - 1, "EB-NeRD")
    files = [require_file(root / "articles.parquet", LAYOUT)]
    files += [require_file(root / s / f, LAYOUT) for s in SPLIT_FOLDERS
              for f in ("behaviors.parquet", "history.parquet")]
    return cached_build("ebnerd", files, {"seed": seed, "name": name}, lambda: build_ebnerd(root, seed, name))


FORMATS = (Format(
    name="ebnerd", title="EB-NeRD (Ekstra Bladet; articles.parquet + train/validation behaviours and histories)",
    layout=LAYOUT,
    protocol="implicit feedback per impression: in-view articles are candidates, clicked ones = 1; history = the "
             "user's history.parquet clicks before the split; train -> train, validation impressions split 50/50 "
             "into valid/test by a seeded permutation",
    detect=is_ebnerd_folder,
    read=lambda path, name="ebnerd", seed=0: load_ebnerd(Path(path), seed=seed, name=name), scheme=IMPRESSIONS),)
