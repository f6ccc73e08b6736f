"""MIND reader (news.tsv + behaviors.tsv of the MIND-small/large train and dev folders).

Layout: `<root>/train` and `<root>/dev`, or `<root>/MINDsmall_train` and `<root>/MINDsmall_dev`
(any `MIND*_train` / `MIND*_dev`). Items are the union of both folders' news (first occurrence
wins; the entity JSON columns are not kept). A user's sequence is the history of the user's first
behaviors row (train folder first), oldest first; every impression sees all of it
(`history_end` = its length), as in MIND where histories predate the impression logs.

Splits: MIND has no public test labels, so `train` = the train folder's impressions and the dev
folder's impressions are split by impression: `numpy.random.default_rng(seed).permutation` of
the dev rows, the first floor(M/2) -> `valid`, the rest -> `test` (each kept in file order).
Impression ids are kept; dev ids are shifted past the largest train id when the two overlap
(`info["dev_id_offset"]`). History/candidate ids that name no news item are dropped and counted
in `info` (with a warning); impressions left without candidates are dropped.

A `test` folder (`<root>/test` or `MIND*_test`, as MIND-large ships) has no click labels
(candidates like `N123`): its impressions are counted (`info["unlabelled_test_impressions"]`) and
reported in one warning line as not scorable; they never enter a split. Inside train/dev a
candidate without a label stays an error. Formats: "mind" (here) and "xmind" (`mind_variants`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lego_core.data.arrays import (as_str_ids, ascii_tokens, first_appearances, offsets_from_sizes, split_lists,
                                   token_index, token_strings)
from lego_core.data import dev_split, fast_tsv
from lego_core.data.processed import cached_build
from lego_core.data.dev_split import known_candidates, split_dev
from lego_core.data.formats import Format
from lego_core.data.io import (check_ids, check_unique, first_short_line, int_option, line_of, parse_times, read_delimited,
                               require_file, warn)
from lego_core.data.schema import IMPRESSIONS, Dataset, Impressions
from lego_core.core.errors import DataError

NEWS_COLUMNS = ["item_id", "category", "subcategory", "title", "abstract", "url", "title_entities",
                "abstract_entities"]
KEPT_NEWS = ["item_id", "category", "subcategory", "title", "abstract", "url"]
BEHAVIOR_COLUMNS = ["impression_id", "user", "time", "history", "impressions"]
LABEL_TAILS = pa.array(["-0", "-1"], type=pa.large_string())  # how a labelled candidate ends (N1-1, N2-0)
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"  # e.g. 11/15/2019 8:55:16 AM
LAYOUT = "a MIND folder holds train/ and dev/ (or MINDsmall_train/ and MINDsmall_dev/), each with " \
         "news.tsv and behaviors.tsv"


def find_folders(root: Path) -> tuple[Path, Path] | None:
    """(train folder, dev folder) of a MIND root, or None when it is not laid out like one."""
    root = Path(root)
    pairs = [(root / "train", root / "dev")]
    pairs += [(p, p.with_name(p.name[:-len("_train")] + "_dev")) for p in sorted(root.glob("MIND*_train"))]
    pairs += [(p, p.with_name(p.name[:-len("_train")] + "_dev")) for p in sorted(root.glob("xMIND*_train"))]
    for train, dev in pairs:
        if train.is_dir() and dev.is_dir():
            return train, dev
    return None


def is_mind_folder(root: Path) -> bool:
    return find_folders(root) is not None


def find_test_folder(root: Path, train_dir: Path) -> Path | None:
    """The unlabelled MIND test folder next to the train folder (`test` or `MIND*_test`), if any."""
    folders = [Path(root) / "test"]
    if train_dir.name.endswith("_train"):
        folders.append(train_dir.with_name(train_dir.name[:-len("_train")] + "_test"))
    return next((f for f in folders if (f / "behaviors.tsv").is_file()), None)


def _non_ascii_share(path: Path, lines: int = 100) -> tuple[int, float]:
    """(tab fields on the first line, share of the first `lines` titles with non-ASCII letters)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            rows = [line.rstrip("\r\n").split("\t") for _, line in zip(range(lines), handle)]
    except OSError:
        return 0, 0.0
    if not rows:
        return 0, 0.0
    col = 1 if len(rows[0]) <= 3 else 3  # xMIND news.tsv: id, title, abstract; MIND: title is column 4
    titles = [r[col] for r in rows if len(r) > col]
    share = sum(any(ord(c) > 127 and c.isalpha() for c in t) for t in titles) / max(len(titles), 1)
    return len(rows[0]), share


def is_xmind_folder(root: Path) -> bool:
    """A MIND layout holding xMIND news: folders named xMIND*, a 3-column news.tsv (id, title,
    abstract, as the xMIND release ships), or titles mostly with non-ASCII letters. Reads the
    first 100 lines of the train news.tsv only."""
    folders = find_folders(root)
    if folders is None:
        return False
    if folders[0].name.startswith("xMIND"):
        return True
    fields, share = _non_ascii_share(folders[0] / "news.tsv")
    return fields == 3 or share > 0.5


def _short_rows(frame: pd.DataFrame, needed: int, path: Path, what: str) -> None:
    """DataError for a file with too few columns, or a row missing fields."""
    if frame.shape[1] < needed:
        raise DataError(f"{path} has {frame.shape[1]} tab-separated columns; {what}")
    line = first_short_line(path, "\t", needed)
    if line:
        raise DataError(f"{path} line {line} has fewer than {needed} tab-separated fields; {what}")


def _table(path: Path, needed: int, what: str) -> pa.Table:
    """A MIND TSV's columns (f0, f1, ...) as Arrow strings: pyarrow's reader, or pandas' where
    pyarrow refuses the file (its errors name the line; rows pandas pads are kept as before)."""
    table = fast_tsv.read_tsv(require_file(path, LAYOUT))
    if table is not None and table.num_columns >= needed:
        return table
    frame = read_delimited(path, "\t", header=False)
    _short_rows(frame, needed, path, what)
    return pa.table({f"f{i}": pa.array(frame.iloc[:, i].to_numpy(dtype=object), type=pa.large_string())
                     for i in range(frame.shape[1])})


def read_news(path: Path) -> pd.DataFrame:
    """news.tsv -> DataFrame[item_id, category, subcategory, title, abstract, url] (strings)."""
    table = _table(path, 5, "MIND news.tsv rows are: id, category, subcategory, title, abstract, url, title "
                            "entities, abstract entities")
    n = min(table.num_columns, len(NEWS_COLUMNS))
    frame = table.select(range(n)).rename_columns(NEWS_COLUMNS[:n]).to_pandas()
    for col in KEPT_NEWS:
        if col not in frame.columns:
            frame[col] = ""
    frame = frame[KEPT_NEWS].fillna("")
    frame["item_id"] = frame["item_id"].str.strip()
    check_ids(frame["item_id"], path, "news id (column 1)", header=False)
    return frame


def _impression_ids(column: pa.ChunkedArray, path: Path) -> np.ndarray:
    ids = fast_tsv.to_int64(column)
    if ids is None:  # not plain integers: pandas' reading (1.0 is 1) and its error naming the line
        text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)
        numbers = pd.to_numeric(text, errors="coerce")
        bad = numbers.isna().to_numpy() | ((numbers % 1) != 0).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path} line {line_of(row, False)}: impression id (column 1) "
                            f"{text.iloc[row]!r} is not an integer")
        ids = numbers.to_numpy().astype(np.int64)
    ordered = np.sort(ids)
    if len(ids) > 1 and (ordered[1:] == ordered[:-1]).any():
        check_unique(pd.Series(ids), path, "impression id (column 1)", header=False)
    return ids


def read_behaviors(path: Path) -> pa.Table:
    """behaviors.tsv -> Table[impression_id int64, user, time int64 (unix s), history, impressions]."""
    table = _table(path, 5, "MIND behaviors.tsv rows are: impression id, user id, time, history, "
                            "impressions (like N1-1 N2-0)")
    table = table.select(range(5)).rename_columns(BEHAVIOR_COLUMNS)
    ids = _impression_ids(table["impression_id"], path)
    times = fast_tsv.parse_times(table["time"], TIME_FORMAT)
    if times is None:  # a time pyarrow refuses or misreads: pandas' parse names the line
        times = parse_times(pd.Series(table["time"].to_numpy(zero_copy_only=False), dtype=object), [TIME_FORMAT],
                            path, "time (column 3)", False, "a MIND time like '11/15/2019 8:55:16 AM'")
    table = table.set_column(0, "impression_id", pa.array(ids))
    return table.set_column(2, "time", pa.array(times))


ROWS = 100_000  # cells split at once: bounds the per-token temporaries (MIND-large: ~4M tokens, not 81M)


def _list_indices(column: pa.ChunkedArray, known: pa.Array) -> tuple[np.ndarray, np.ndarray, str]:
    """Space-separated id lists -> (sizes [rows], index in `known` or -1 [tokens], the first id),
    ROWS cells at a time."""
    sizes, indices, first = [np.zeros(0, np.int64)], [np.zeros(0, np.int32)], ""
    for base in range(0, len(column), ROWS):
        cells = column.slice(base, ROWS)
        split = ascii_tokens(cells)
        size, tokens = split_lists(cells) if split is None else (split[0], token_strings(split[3], *split[1:3]))
        first = first or (tokens[0].as_py() if len(tokens) else "")
        sizes.append(size)
        indices.append(token_index(tokens, known, np.int32))
    return np.concatenate(sizes), np.concatenate(indices, dtype=np.int64), first


def parse_impressions(column: pa.ChunkedArray, path: Path, known: pa.Array
                      ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], str]:
    """'N1-1 N2-0' cells -> (sizes [M], item index in `known` or -1 [T], labels [T] int8, the first
    candidate's news id), ROWS rows at a time: the parts of each, joined by the caller once the
    text is freed."""
    sizes, items, labels, first = [np.zeros(0, np.int64)], [np.zeros(0, np.int32)], [np.zeros(0, np.int8)], ""
    for base in range(0, len(column), ROWS):
        fast = _labelled_tokens(column.slice(base, ROWS), known)
        if fast is not None:
            sizes.append(fast[0])
            items.append(fast[1])
            labels.append(fast[2])
            first = first or fast[3]
            continue
        size, tokens = split_lists(column.slice(base, ROWS))
        empty = size == 0
        if empty.any():
            raise DataError(f"{path} line {line_of(base + int(np.flatnonzero(empty)[0]), False)}: impressions "
                            "(column 5) is empty; each impression lists candidates like 'N1-1 N2-0'")
        tail = pc.utf8_slice_codeunits(tokens, -2)
        good = pc.and_(pc.is_in(tail, value_set=LABEL_TAILS),
                       pc.greater(pc.utf8_length(tokens), 2)).to_numpy(zero_copy_only=False)
        if not good.all():
            bad = int(np.flatnonzero(~good)[0])
            row = base + int(np.searchsorted(offsets_from_sizes(size), bad, side="right") - 1)
            raise DataError(f"{path} line {line_of(row, False)}: impression candidate {tokens[bad].as_py()!r} "
                            "lacks a '-1'/'-0' click label (MIND test folders have no labels; use train and dev)")
        ids = pc.utf8_slice_codeunits(tokens, 0, -2)
        first = first or ids[0].as_py()
        sizes.append(size)
        items.append(token_index(ids, known))
        labels.append(pc.equal(tail, "-1").to_numpy(zero_copy_only=False).astype(np.int8))
    return sizes, items, labels, first


def _labelled_tokens(cells: pa.ChunkedArray, known: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, str] | None:
    """`parse_impressions` of well-formed cells on their bytes (`ascii_tokens`); None when any
    cell is empty, unusual or lacks a label (the Arrow path then names the line)."""
    split = ascii_tokens(cells)
    if split is None:
        return None
    sizes, starts, ends, data = split
    labels = _byte_labels(starts, ends, data) if len(ends) and sizes.all() else None
    if labels is None:
        return None
    ids = token_strings(data, starts, ends, drop=2)
    return sizes, token_index(ids, known, np.int32), labels, ids[0].as_py()


def _byte_labels(starts: np.ndarray, ends: np.ndarray, data: np.ndarray, shortest: int = 3) -> np.ndarray | None:
    """The click label (int8 0/1) of each `ascii_tokens` token, when every one is at least
    `shortest` bytes and ends in '-0' or '-1'; None when any does not."""
    if len(ends) and (ends - starts).min() < shortest:
        return None
    label = data[ends - 1]
    if (data[ends - 2] != ord("-")).any() or not ((label == ord("0")) | (label == ord("1"))).all():
        return None
    return (label == ord("1")).astype(np.int8)


def _impressions(tables: list[pa.Table], user_codes: np.ndarray, seq_len: np.ndarray, known: pa.Array,
                 path: Path, info: dict, split: str) -> Impressions:
    """The Impressions of the first of `tables`, taken off the list so its text is freed as soon
    as it is parsed (MIND-large: 0.7 GB, before 650 MB of item indices are joined)."""
    table = tables.pop(0)
    n, column = table.num_rows, table["impressions"]
    ids, times = table["impression_id"].to_numpy(), table["time"].to_numpy()
    del table
    sizes, idx, labels, first = parse_impressions(column, path, known)
    del column
    pa.default_memory_pool().release_unused()
    sizes, idx, labels = np.concatenate(sizes), np.concatenate(idx, dtype=np.int64), np.concatenate(labels)
    ok, kept_sizes, keep_rows = known_candidates(
        None, idx, n, info, split, path, "impression candidates naming unknown news",
        f"no impression names a known news item (e.g. {first!r}); check that news.tsv and behaviors.tsv come "
        "from the same MIND release", sizes=sizes)
    if not ok.all():
        idx, labels = idx[ok], labels[ok]
    whole = bool(keep_rows.all())
    users = user_codes if whole else user_codes[keep_rows]
    return Impressions(ids=ids if whole else ids[keep_rows], users=users, times=times if whole else times[keep_rows],
                       history_end=seq_len[users], offsets=offsets_from_sizes(kept_sizes if whole else
                                                                              kept_sizes[keep_rows]),
                       items=idx, labels=labels)


def read_test_folder(folder: Path, info: dict) -> None:
    """Count the impressions of a MIND test folder into `info` and say (one warning) why they are
    not used: MIND test candidates carry no click labels, so they cannot be scored."""
    path = folder / "behaviors.tsv"
    table = _table(path, 5, "MIND behaviors.tsv rows are: impression id, user id, time, history, "
                            "impressions (like N1 N2 in a test folder)")
    column, rows = table.column(4), table.num_rows
    del table
    candidates, labelled = 0, True
    for base in range(0, rows, ROWS):  # in slices: MIND-large's test log holds ~80 million candidates
        cells = column.slice(base, ROWS)
        split = ascii_tokens(cells)
        if split is None:
            sizes, tokens = split_lists(cells)
            tails = pc.utf8_slice_codeunits(tokens, -2)
            labelled = labelled and bool(pc.all(pc.is_in(tails, value_set=LABEL_TAILS)).as_py())
        else:
            sizes, starts, ends, data = split
            labelled = labelled and _byte_labels(starts, ends, data, shortest=2) is not None
        candidates += int(sizes.sum())
    labelled = labelled and candidates > 0
    info["test_folder"] = str(folder)
    key = "labelled_test_impressions_unused" if labelled else "unlabelled_test_impressions"
    info[key] = int(rows)
    info["test_candidates"] = candidates
    info["test_note"] = (f"{path}: {rows} test impressions "
                         + ("have labels but are not used (valid/test come from dev)" if labelled else
                            "have no click labels and cannot be scored; valid/test come from dev"))
    warn(info["test_note"])


def build_mind(root: Path, seed: int = 0, name: str = "mind", *, news: list[pd.DataFrame] | None = None,
               behaviors: list[Path] | None = None, reader: str = "mind") -> Dataset:
    """Read a MIND root folder into a Dataset (uncached; see module doc for the protocol).
    `news` (train, dev frames) and `behaviors` (two paths) replace the folders' own files
    (xMIND reads translated news with MIND's behaviours this way)."""
    seed = int_option(seed, "seed", 0, 2**63 - 1, "MIND")
    folders = find_folders(root)
    if folders is None:
        raise DataError(f"{root} is not a MIND folder: {LAYOUT}")
    train_dir = folders[0]
    news = news if news is not None else [read_news(d / "news.tsv") for d in folders]
    items = pd.concat(news, ignore_index=True).drop_duplicates("item_id", keep="first").reset_index(drop=True)
    known = pa.array(items["item_id"].to_numpy(dtype=object), type=pa.large_string())
    paths = behaviors or [d / "behaviors.tsv" for d in folders]
    behaviors = [read_behaviors(p) for p in paths]
    pa.default_memory_pool().release_unused()  # the CSV reader's block buffers
    info: dict = {"reader": reader, "source": str(root), "seed": int(seed),
                  "note": dev_split.NOTE}
    test = find_test_folder(root, train_dir)
    if test is not None:
        read_test_folder(test, info)

    offset = 0
    train_ids, dev_ids = (b["impression_id"].to_numpy() for b in behaviors)
    if np.isin(dev_ids, train_ids).any():
        offset = int(train_ids.max() - dev_ids.min() + 1)
        behaviors[1] = behaviors[1].set_column(0, "impression_id", pa.array(dev_ids + offset))
    info["dev_id_offset"] = offset

    def both(column: str) -> pa.ChunkedArray:
        return pa.chunked_array(behaviors[0][column].chunks + behaviors[1][column].chunks, type=pa.large_string())

    encoded = pc.dictionary_encode(pc.utf8_trim_whitespace(both("user").combine_chunks()))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)  # first-appearance order
    users = encoded.dictionary.to_numpy(zero_copy_only=False)
    first_rows = np.zeros(len(codes), dtype=bool)
    first_rows[first_appearances(codes)] = True  # rows in order: a filter, chunk by chunk (a take joins them all first)
    histories = both("history").filter(pa.array(first_rows))
    behaviors = [b.drop_columns(["user", "history"]) for b in behaviors]  # most of the text: freed here
    pa.default_memory_pool().release_unused()
    sizes, hist_idx, first = _list_indices(histories, known)
    del histories
    ok = hist_idx >= 0
    info["unknown_history_items_dropped"] = int((~ok).sum())
    if len(hist_idx) and not ok.any():
        raise DataError(f"{paths[0]}: no history names a known news item (e.g. "
                        f"{first!r}); check that news.tsv and behaviors.tsv come from the same MIND release")
    if ok.all():
        seq_len = sizes
    else:
        warn(f"{root}: dropped {int((~ok).sum())} history entries naming unknown news")
        owner = np.repeat(np.arange(len(users)), sizes)
        seq_len = np.bincount(owner[ok], minlength=len(users)).astype(np.int64)
        hist_idx = hist_idx[ok]

    n_train = behaviors[0].num_rows
    train = _impressions(behaviors, codes[:n_train], seq_len, known, paths[0], info, "train")
    dev = _impressions(behaviors, codes[n_train:], seq_len, known, paths[1], info, "dev")
    splits = split_dev(train, dev, seed, info)
    return Dataset(name=name, items=items, users=as_str_ids(users), seq_offsets=offsets_from_sizes(seq_len),
                   seq_items=hist_idx, splits=splits, text_fields=["title", "abstract"],
                   category_field="category", info=info)


def load_mind(root: Path, seed: int = 0, name: str = "mind") -> Dataset:
    """A MIND root folder as a Dataset, cached by its four files + seed."""
    folders = find_folders(root)
    if folders is None:
        raise DataError(f"{root} is not a MIND folder: {LAYOUT}")
    seed = int_option(seed, "seed", 0, 2**63 - 1, "MIND")
    files = [require_file(d / f, LAYOUT) for d in folders for f in ("news.tsv", "behaviors.tsv")]
    test = find_test_folder(root, folders[0])
    files += [test / "behaviors.tsv"] if test is not None else []
    return cached_build("mind", files, {"seed": seed, "name": name}, lambda: build_mind(root, seed, name))


FORMATS = (Format(
    name="mind", title="MIND (news.tsv + behaviors.tsv in train/ and dev/ folders)", layout=LAYOUT,
    protocol="MIND's own click labels (N1-1 = clicked, N1-0 = shown, not clicked); train folder -> train, "
             "dev impressions split 50/50 into valid/test by a seeded permutation; an unlabelled test folder "
             "is counted but cannot be scored",
    detect=lambda path: is_mind_folder(path) and not is_xmind_folder(path),
    read=lambda path, name="mind", seed=0: load_mind(Path(path), seed=seed, name=name), scheme=IMPRESSIONS),)
