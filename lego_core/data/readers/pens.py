"""PENS reader (Microsoft PErsonalized News headlineS, the training part).

PENS (Ao et al., "PENS: A Dataset and Generic Framework for Personalized News Headline
Generation", ACL 2021; https://msnews.github.io/pens_data.html) ships three tab-separated files
with a header line:

- `news.tsv`: `News ID`, `Category`, `Topic`, `Headline`, `News body`, `Title entity`,
  `Entity content` (ids like N10000);
- `train.tsv`, `valid.tsv`: `UserID`, `ClicknewsID` (the user's earlier clicks, space-separated,
  oldest first), `dwelltime`, `exposure_time`, `pos` (clicked news of the impression), `neg`
  (shown, not clicked), `start`, `end` (impression start/end, like `7/3/2019 6:36:08 AM`),
  `dwelltime_pos`. One row is one impression.

Items: `item_id`, `category`, `topic`, `title` (Headline), `body`; the text field is the title.
Feedback: every `pos` id is a candidate labelled 1 and every `neg` id one labelled 0 (pos first,
file order). A user's sequence is the `ClicknewsID` of the user's first row (train file first),
and every impression sees all of it (as MIND). Splits: train.tsv -> `train`; valid.tsv
impressions split by `numpy.random.default_rng(seed).permutation`, first floor(M/2) -> `valid`,
rest -> `test` (file order kept). Impression ids are the row numbers (train 0..M-1, valid
after). Ids naming no news item are dropped and counted in `info` (warning); impressions left
without candidates are dropped. The personalized test set (headlines written by annotators) has
no impressions and is not read.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lego_core.data.arrays import as_str_ids, first_appearances, offsets_from_sizes, split_lists, token_index
from lego_core.data.processed import cached_build
from lego_core.data.dev_split import known_candidates, split_dev
from lego_core.data.formats import Format
from lego_core.data.io import (check_columns, check_ids, first_line, first_short_line, int_option, line_of,
                               parse_times, read_delimited, require_file, warn)
from lego_core.data.readers.mind import TIME_FORMAT
from lego_core.data.schema import IMPRESSIONS, Dataset, Impressions
from lego_core.core.errors import DataError

NEWS_HEADER = ["News ID", "Category", "Topic", "Headline", "News body"]
LOG_HEADER = ["UserID", "ClicknewsID", "pos", "neg", "start"]
LAYOUT = "a PENS folder holds news.tsv, train.tsv and valid.tsv (tab-separated, with header lines)"


def is_pens_folder(root: Path) -> bool:
    """news.tsv/train.tsv/valid.tsv whose train header names UserID and ClicknewsID (reads one line)."""
    root = Path(root)
    if not all((root / f).is_file() for f in ("news.tsv", "train.tsv", "valid.tsv")):
        return False
    header = first_line(root / "train.tsv").split("\t")
    return "UserID" in header and "ClicknewsID" in header


def _read(path: Path, required: list[str], what: str) -> pd.DataFrame:
    frame = read_delimited(require_file(path, LAYOUT), "\t", header=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    check_columns(frame, required, path, what)
    line = first_short_line(path, "\t", len(frame.columns))
    if line:
        raise DataError(f"{path} line {line} has fewer tab-separated fields than its header "
                        f"({len(frame.columns)}); {what}")
    return frame


def read_news(path: Path) -> pd.DataFrame:
    """news.tsv -> DataFrame[item_id, category, topic, title, body]."""
    frame = _read(path, NEWS_HEADER, "PENS news.tsv has a header line: " + "\t".join(NEWS_HEADER) + "\t...")
    items = pd.DataFrame({"item_id": frame["News ID"].str.strip(), "category": frame["Category"],
                          "topic": frame["Topic"], "title": frame["Headline"], "body": frame["News body"]})
    check_ids(items["item_id"], path, "News ID", header=True)
    return items


def read_log(path: Path) -> pd.DataFrame:
    """train.tsv / valid.tsv -> the frame with `start` as unix seconds (column `time`)."""
    frame = _read(path, LOG_HEADER, "PENS train.tsv/valid.tsv have a header line: UserID, ClicknewsID, "
                                    "dwelltime, exposure_time, pos, neg, start, end, dwelltime_pos")
    frame["time"] = parse_times(frame["start"], [TIME_FORMAT, "%Y-%m-%d %H:%M:%S"], path, "start", True,
                                "a time like '7/3/2019 6:36:08 AM'")
    frame["UserID"] = frame["UserID"].str.strip()
    empty = (frame["UserID"] == "").to_numpy()
    if empty.any():
        raise DataError(f"{path} line {line_of(int(np.flatnonzero(empty)[0]), True)}: column 'UserID' is empty")
    return frame


def _impressions(frame: pd.DataFrame, users: np.ndarray, seq_len: np.ndarray, known: pa.Array, first_id: int,
                 path: Path, info: dict, split: str) -> Impressions:
    """pos (label 1) then neg (label 0) ids of each row, unknown ids and empty rows dropped."""
    pos_sizes, pos = split_lists(frame["pos"])
    neg_sizes, neg = split_lists(frame["neg"])
    rows = np.concatenate([np.repeat(np.arange(len(frame)), pos_sizes), np.repeat(np.arange(len(frame)), neg_sizes)])
    idx = np.concatenate([token_index(pos, known), token_index(neg, known)])
    labels = np.concatenate([np.ones(len(pos), np.int8), np.zeros(len(neg), np.int8)])
    order = np.argsort(rows, kind="stable")
    rows, idx, labels = rows[order], idx[order], labels[order]
    ok, sizes, keep = known_candidates(rows, idx, len(frame), info, split, path, "pos/neg ids naming unknown news",
                                       "no row names a known news id in columns 'pos'/'neg'; check that news.tsv "
                                       "and the logs come from the same PENS release")
    ids = np.arange(first_id, first_id + len(frame), dtype=np.int64)[keep]
    u = users[keep]
    return Impressions(ids=ids, users=u, times=frame["time"].to_numpy(np.int64)[keep], history_end=seq_len[u],
                       offsets=offsets_from_sizes(sizes[keep]), items=idx[ok], labels=labels[ok])


def build_pens(root: Path, seed: int = 0, name: str = "pens") -> Dataset:
    """Read a PENS folder (uncached; see module doc)."""
    root = Path(root)
    seed = int_option(seed, "seed", 0, 2**63 - 1, "PENS")
    items = read_news(root / "news.tsv")
    known = pa.array(items["item_id"].to_numpy(dtype=object), type=pa.large_string())
    paths = [root / "train.tsv", root / "valid.tsv"]
    logs = [read_log(p) for p in paths]
    codes, users = pd.factorize(np.concatenate([f["UserID"].to_numpy(dtype=object) for f in logs]))
    first_rows = first_appearances(codes)
    histories = pd.concat([f["ClicknewsID"] for f in logs], ignore_index=True).iloc[first_rows]
    sizes, hist_ids = split_lists(histories)
    hist_idx = token_index(hist_ids, known)
    ok = hist_idx >= 0
    info: dict = {"reader": "pens", "source": str(root), "seed": int(seed),
                  "unknown_history_items_dropped": int((~ok).sum()),
                  "note": "pos = 1, neg = 0; history = ClicknewsID of the user's first row; valid.tsv "
                          "impressions split 50/50 into valid/test by a seeded permutation"}
    if (~ok).any():
        warn(f"{root}: dropped {int((~ok).sum())} ClicknewsID entries naming unknown news")
    seq_len = np.bincount(np.repeat(np.arange(len(users)), sizes)[ok], minlength=len(users)).astype(np.int64)
    n_train = len(logs[0])
    train = _impressions(logs[0], codes[:n_train], seq_len, known, 0, paths[0], info, "train")
    dev = _impressions(logs[1], codes[n_train:], seq_len, known, n_train, paths[1], info, "valid_file")
    splits = split_dev(train, dev, seed, info)
    return Dataset(name=name, items=items, users=as_str_ids(users), seq_offsets=offsets_from_sizes(seq_len),
                   seq_items=hist_idx[ok], splits=splits, text_fields=["title"], category_field="category",
                   info=info)


def load_pens(root: Path, seed: int = 0, name: str = "pens") -> Dataset:
    """A PENS folder as a Dataset, cached by its three files + options."""
    root = Path(root)
    seed = int_option(seed, "seed", 0, 2**63 - 1, "PENS")
    files = [require_file(root / f, LAYOUT) for f in ("news.tsv", "train.tsv", "valid.tsv")]
    return cached_build("pens", files, {"seed": seed, "name": name}, lambda: build_pens(root, seed, name))


FORMATS = (Format(
    name="pens", title="PENS (news.tsv + train.tsv/valid.tsv impression logs)", layout=LAYOUT,
    protocol="implicit feedback per impression row: pos ids = 1, neg ids = 0, history = ClicknewsID; "
             "train.tsv -> train, valid.tsv impressions split 50/50 into valid/test by a seeded permutation",
    detect=is_pens_folder,
    read=lambda path, name="pens", seed=0: load_pens(Path(path), seed=seed, name=name), scheme=IMPRESSIONS),)
