"""Amazon product reviews (McAuley lab): the 2014, 2018 and 2023 releases, review file + metadata.

Documentation: https://jmcauley.ucsd.edu/data/amazon/ (2014: McAuley, Targett, Shi and van den
Hengel, "Image-based Recommendations on Styles and Substitutes", SIGIR 2015; He and McAuley, WWW
2016), https://nijianmo.github.io/amazon/ (2018: Ni, Li and McAuley, EMNLP 2019) and
https://amazon-reviews-2023.github.io/ (2023: Hou, Li, He, Yan, Chen and McAuley, arXiv 2403.03952).

Layouts (a folder holding one pair, or the review file; the year is recognised by the keys):
- 2014: `reviews_<Cat>_5.json.gz` / `reviews_<Cat>.json.gz` (JSON lines: reviewerID, asin, overall,
  unixReviewTime, ...) + `meta_<Cat>.json.gz` (lines are Python dict literals: asin, title,
  categories = list of category paths, description = string, brand).
- 2018: `<Cat>_5.json.gz` / `<Cat>.json.gz` (the same review keys plus vote, style) +
  `meta_<Cat>.json.gz` (JSON: asin, title, category = one path, description = list, brand, main_cat).
- 2023: `<Cat>.jsonl(.gz)` (user_id, parent_asin, asin, rating, timestamp in milliseconds, title and
  text of the review) + `meta_<Cat>.jsonl(.gz)` (parent_asin, title, main_category, categories,
  description = list, store). Items are parent_asin (the product, not its variant).

Items: the metadata rows of reviewed products: title, categories (the category path, " > "
joined), description, brand (store in 2023); category = the second level of the path (the first
names the whole file), else the first, else the main category. A repeated metadata row keeps its
first occurrence (counted in `info`). Protocol: every review is a click whatever its rating; per
user, leave-last-out by review time (last = test, second to last = valid, `negatives` sampled
unseen products). Reviews of products that have no metadata row are dropped with a warning and
counted in `info["unknown_items_dropped"]` (the 2018 metadata lacks some reviewed products).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lego_core.data.arrays import as_str_ids
from lego_core.data.processed import cached_build
from lego_core.data.formats import Format
from lego_core.data.readers.goodreads import check_gzip, first_keys, read_json_lines, text_of
from lego_core.data.io import require_file, to_unix_seconds, warn
from lego_core.data.leave_last_out import check_options, split_log
from lego_core.data.schema import LEAVE_LAST_OUT, Dataset
from lego_core.core.errors import DataError

_S = pa.string()
REVIEW_FIELDS = {"old": {"reviewerID": _S, "asin": _S, "unixReviewTime": pa.int64()},
                 2023: {"user_id": _S, "parent_asin": _S, "timestamp": pa.int64()}}
META_FIELDS = {2014: {"asin": _S, "title": _S, "categories": pa.list_(pa.list_(_S)), "description": _S,
                      "brand": _S},
               2018: {"asin": _S, "title": _S, "category": pa.list_(_S), "description": pa.list_(_S), "brand": _S,
                      "main_cat": _S},
               2023: {"parent_asin": _S, "title": _S, "main_category": _S, "categories": pa.list_(_S),
                      "description": pa.list_(_S), "store": _S}}
_EXT = r"\.jsonl?(\.gz)?$"
LAYOUT = "an Amazon reviews folder holds a review file (reviews_<Cat>_5.json.gz for 2014, <Cat>_5.json.gz or " \
         "<Cat>.json.gz for 2018, <Cat>.jsonl(.gz) for 2023) and meta_<Cat> with the same extension family"
PROTOCOL = "every review is a click (any rating); per user, leave-last-out by review time: last = test, second " \
           "to last = valid, each with `negatives` sampled unseen products; reviews of products without " \
           "metadata are dropped (counted)"


def _category(name: str) -> str:
    return re.sub(_EXT, "", name)


def _meta_for(folder: Path, cat: str) -> Path | None:
    for ext in (".json.gz", ".json", ".jsonl.gz", ".jsonl"):
        if (folder / f"meta_{cat}{ext}").is_file():
            return folder / f"meta_{cat}{ext}"
    return None


def _reviews_for(folder: Path, cat: str) -> Path | None:
    for stem in (f"reviews_{cat}_5", f"reviews_{cat}", f"{cat}_5", cat):
        for ext in (".json.gz", ".json", ".jsonl.gz", ".jsonl"):
            if (folder / f"{stem}{ext}").is_file():
                return folder / f"{stem}{ext}"
    return None


def locate(path: Path) -> tuple[Path, Path]:
    """(review file, metadata file) of a folder holding one pair, or of a review/metadata file; DataError
    naming what is missing otherwise."""
    path = Path(path)
    if path.is_dir():
        pairs = []
        for meta in sorted(path.iterdir()):
            if meta.name.startswith("meta_") and re.search(_EXT, meta.name) and meta.is_file():
                reviews = _reviews_for(path, _category(meta.name)[len("meta_"):])
                if reviews is not None:
                    pairs.append((reviews, meta))
        if len(pairs) == 1:
            return pairs[0]
        if pairs:
            raise DataError(f"{path} holds several categories {[r.name for r, _ in pairs]}: pass one review file")
        raise DataError(f"{path}: no Amazon review + metadata pair found; {LAYOUT}")
    if not re.search(_EXT, path.name):
        raise DataError(f"{path} is not an Amazon review file (JSON lines, .json(.gz) or .jsonl(.gz)); {LAYOUT}")
    require_file(path, LAYOUT)
    if path.name.startswith("meta_"):
        reviews = _reviews_for(path.parent, _category(path.name)[len("meta_"):])
        if reviews is None:
            raise DataError(f"{path}: no review file of its category beside it; {LAYOUT}")
        return reviews, path
    cat = re.sub(r"_5$", "", re.sub(r"^reviews_", "", _category(path.name)))
    meta = _meta_for(path.parent, cat)
    if meta is None:
        raise DataError(f"{path.parent / f'meta_{cat}.json.gz'} not found: the metadata file of {path.name} "
                        f"(meta_{cat}.jsonl for 2023)")
    return path, meta


def release(review_keys: set[str], meta_keys: set[str]) -> int | None:
    """2014, 2018 or 2023 from the keys of the first review and metadata lines; None if neither."""
    if {"user_id", "parent_asin"} <= review_keys:
        return 2023
    if not {"reviewerID", "asin"} <= review_keys:
        return None
    if "category" in meta_keys or "main_cat" in meta_keys or review_keys & {"verified", "vote", "style"}:
        return 2018
    return 2014


def detect(path: Path) -> bool:
    try:
        reviews, meta = locate(path)
    except DataError:
        return False
    return release(first_keys(reviews), first_keys(meta)) is not None


def read_reviews(path: Path, year: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user ids, item ids, unix seconds) of every review."""
    fields = REVIEW_FIELDS[2023 if year == 2023 else "old"]
    user, item, time = fields
    what = f"Amazon {year} review file (JSON lines with {', '.join(fields)})"
    frame = read_json_lines(path, fields, list(fields), what, literal=year == 2014)  # 2014 was read with eval
    times = to_unix_seconds(frame[time], path, time, header=False)
    if year == 2023:
        times = times // 1000  # milliseconds
    return as_str_ids(frame[user].to_numpy(dtype=object)), as_str_ids(frame[item].to_numpy(dtype=object)), times


def read_meta(path: Path, year: int) -> tuple[pd.DataFrame, int]:
    """(items frame, repeated rows dropped) from a metadata file."""
    fields = META_FIELDS[year]
    key = "parent_asin" if year == 2023 else "asin"
    what = f"Amazon {year} metadata file (lines with {key}, title, categories, description)"
    frame = read_json_lines(path, fields, [key], what, literal=year == 2014)
    ids = as_str_ids(frame[key].to_numpy(dtype=object))
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        frame, ids = frame[~dup].reset_index(drop=True), ids[~dup]
    if year == 2014:
        path_ = frame["categories"].str.get(0)
        main = pd.Series([None] * len(frame), dtype=object)
    else:
        path_ = frame["category" if year == 2018 else "categories"]
        main = frame["main_cat" if year == 2018 else "main_category"]
    second, first = path_.str.get(1), path_.str.get(0)
    category = second.where(second.notna(), first)
    category = category.where(category.notna(), main)
    items = pd.DataFrame({"item_id": ids, "title": text_of(frame["title"]),
                          "categories": text_of(path_, " > "), "description": text_of(frame["description"]),
                          "brand": text_of(frame["store" if year == 2023 else "brand"]),
                          "category": text_of(category)})
    return items, int(dup.sum())


def load(path: Path, name: str | None = None, negatives: int = 99, seed: int = 0) -> Dataset:
    """An Amazon reviews folder or review file (2014, 2018 or 2023) as a leave-last-out dataset (cached)."""
    negatives, seed = check_options(negatives, seed, "amazon")
    reviews_file, meta_file = locate(path)
    for f in (reviews_file, meta_file):
        if f.stat().st_size == 0:
            raise DataError(f"{f} is empty: an Amazon review or metadata file holds one record a line")
        check_gzip(f)
    year = release(first_keys(reviews_file), first_keys(meta_file))
    if year is None:
        raise DataError(f"{reviews_file} line 1 has keys {sorted(first_keys(reviews_file))}; an Amazon review "
                        f"file needs reviewerID, asin, unixReviewTime (2014/2018) or user_id, parent_asin, "
                        f"timestamp (2023), and a gzip or text file of JSON lines")
    name = name or "amazon-" + re.sub(r"_5$", "", re.sub(r"^reviews_", "", _category(reviews_file.name)))

    def build() -> Dataset:
        users, item_ids, times = read_reviews(reviews_file, year)
        items, repeated = read_meta(meta_file, year)
        if repeated:
            warn(f"{meta_file}: {repeated} repeated metadata rows; kept the first of each")
        reviewed = items["item_id"].isin(pd.unique(item_ids)).to_numpy()
        info = {"reader": "amazon", "release": year, "source": str(reviews_file), "meta": str(meta_file),
                "repeated_meta_rows_dropped": repeated, "unreviewed_meta_rows_dropped": int((~reviewed).sum())}
        return split_log(name, items[reviewed].reset_index(drop=True), users, item_ids, times, negatives=negatives,
                         seed=seed, text_fields=["title", "categories", "description", "brand"],
                         category_field="category", info=info, source=str(reviews_file))

    return cached_build("amazon", [reviews_file, meta_file], {"name": name, "negatives": negatives, "seed": seed},
                        build)


FORMATS = (Format("amazon", "Amazon reviews 2014 / 2018 / 2023 (review JSON lines + meta_<Cat>)", LAYOUT, PROTOCOL,
                  detect, load, (("negatives", 99), ("seed", 0)), scheme=LEAVE_LAST_OUT),)
