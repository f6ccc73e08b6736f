"""Goodreads (UCSD Book Graph): `goodreads_books*.json.gz` + `goodreads_interactions*.json.gz`.

Documentation: https://mengtingwan.github.io/data/goodreads.html; Mengting Wan and Julian McAuley,
"Item Recommendation on Monotonic Behavior Chains", RecSys 2018, and Wan, Misra, Nakashole and
McAuley, "Fine-Grained Spoiler Detection from Large-Scale Review Corpora", ACL 2019.

Layout: gzipped JSON lines. Books: `book_id`, `title`, `description`, `popular_shelves` (a list of
{"count", "name"}, most used first), `publication_year`, `authors`, ... (all values strings).
Interactions: `user_id`, `book_id`, `review_id`, `is_read` (bool), `rating` (0 = none),
`date_added` ("Tue Oct 17 04:38:53 -0700 2017"), ... A path is the folder, or the interactions
file; its books file has the same suffix (`goodreads_interactions_poetry` ->
`goodreads_books_poetry`; `goodreads_interactions_dedup` -> `goodreads_books`). The CSV export
with integer-mapped ids (`goodreads_interactions.csv`) is not read.

Items: the books some kept interaction names (title, description, shelves = up to 10 most popular
shelf names other than generic ones such as to-read; category = the first of them, year; and the
author names when `goodreads_book_authors.json.gz` lies beside the books file).
Protocol: an interaction with `is_read` true is a click (rating > 0 implies is_read; shelved but
unread books are not clicks); per user, leave-last-out by `date_added` (last = test, second to last =
valid, `negatives` sampled unseen books). An interaction naming a book the books file lacks is an error.
"""
from __future__ import annotations

import ast
import gzip
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pj

from lego_core.data.arrays import as_str_ids
from lego_core.data.processed import cached_build
from lego_core.data.formats import Format
from lego_core.data.io import check_known, line_of, parse_times, require_file
from lego_core.data.leave_last_out import check_options, split_log
from lego_core.data.schema import LEAVE_LAST_OUT, Dataset
from lego_core.core.errors import DataError

DATE_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # Tue Oct 17 04:38:53 -0700 2017
GENERIC_SHELVES = frozenset({"to-read", "currently-reading", "favorites", "favourites", "owned", "books-i-own",
                             "default", "owned-books", "library", "my-books", "my-library", "wish-list", "to-buy",
                             "kindle", "ebook", "ebooks", "home-library", "i-own", "own-it", "re-read"})
MAX_SHELVES = 10
SHELF = pa.list_(pa.struct([("count", pa.string()), ("name", pa.string())]))
AUTHORS = pa.list_(pa.struct([("author_id", pa.string()), ("role", pa.string())]))
BOOK_FIELDS = {"book_id": pa.string(), "title": pa.string(), "description": pa.string(),
               "popular_shelves": SHELF, "publication_year": pa.string(), "authors": AUTHORS}
AUTHOR_FIELDS = {"author_id": pa.string(), "name": pa.string()}
AUTHORS_FILE = "goodreads_book_authors.json.gz"
INTERACTION_FIELDS = {"user_id": pa.string(), "book_id": pa.string(), "is_read": pa.bool_(),
                      "date_added": pa.string()}
LAYOUT = "a Goodreads folder holds goodreads_books[_<genre>].json.gz and goodreads_interactions[_<genre>].json.gz"
PROTOCOL = "an interaction with is_read true is a click; per user, leave-last-out by date_added: last = test, " \
           "second to last = valid, each with `negatives` sampled unseen books"


# ---- JSON lines (shared with amazon.py) ---------------------------------------------------------------

def check_gzip(path: Path) -> None:
    """DataError when a `.gz` file lacks the gzip header."""
    if path.suffix == ".gz":
        with open(path, "rb") as handle:
            if handle.read(2) != b"\x1f\x8b":
                raise DataError(f"{path} is not gzip-compressed (no gzip header): gzip it or drop the .gz suffix")


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8-sig") if path.suffix == ".gz" else open(path, encoding="utf-8-sig")


def first_keys(path: Path) -> set[str]:
    """Keys of the first JSON (or Python dict literal) line of a file; empty when unreadable. Cheap."""
    try:
        with _open_text(Path(path)) as handle:
            line = handle.readline(1_000_000)
        record = _parse_line(line, literal=True)
    except (OSError, EOFError, UnicodeDecodeError, zlib.error, ValueError, SyntaxError, MemoryError, RecursionError):
        return set()
    return set(record) if isinstance(record, dict) else set()


def _parse_line(line: str, literal: bool):
    try:
        return json.loads(line)
    except ValueError:
        if not literal:
            raise
        return ast.literal_eval(line)  # Amazon 2014 metadata: Python dict literals


def read_json_lines(path: Path, fields: dict[str, pa.DataType], required: list[str], what: str,
                    literal: bool = False) -> pd.DataFrame:
    """The `fields` of a JSON-lines file (gzipped when it ends in .gz) as a DataFrame, one row a line.

    pyarrow reads it with an explicit schema; when that fails (a malformed line, a value of another
    type, Python literals) every line is parsed in Python, so a bad line is reported with its
    number. Missing `required` keys, an empty file and a broken gzip stream raise DataError."""
    path = require_file(path, what)
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty: {what}")
    check_gzip(path)
    schema = pa.schema(list(fields.items()))
    try:
        table = pj.read_json(path, parse_options=pj.ParseOptions(explicit_schema=schema,
                                                                 unexpected_field_behavior="ignore"))
        frame = table.to_pandas(types_mapper=None)
        frame = frame.astype({k: object for k, t in fields.items() if pa.types.is_string(t)})
    except (pa.ArrowInvalid, OSError, EOFError):
        frame = _python_lines(path, list(fields), what, literal)
    if len(frame) == 0:
        raise DataError(f"{path} has no JSON lines: {what}")
    for key in required:
        missing = frame[key].isna().to_numpy()
        if missing.all():
            raise DataError(f"{path} lacks key {key!r} (line 1 has {sorted(first_keys(path))}): {what}")
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise DataError(f"{path} line {line_of(row, False)} has no {key!r} (missing or null): {what}")
    return frame


def _python_lines(path: Path, keys: list[str], what: str, literal: bool) -> pd.DataFrame:
    """Every line parsed with json.loads (ast.literal_eval as fallback when `literal`)."""
    rows = []
    number = 0
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = _parse_line(line, literal)
                except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
                    reason = " ".join(str(exc).split())[:80]
                    raise DataError(f"{path} line {number} is not valid JSON ({reason}): fix or remove that "
                                    f"line; {what}") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path} line {number} is not a JSON object: each line must be one {{...}}")
                rows.append(tuple(record.get(k) for k in keys))
    except (OSError, EOFError, zlib.error) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path} is truncated or not a valid gzip file after line {number} ({reason}): "
                        f"download it again") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} line {number + 1} is not valid UTF-8: re-save the file as UTF-8") from None
    return pd.DataFrame(rows, columns=keys, dtype=object)


def text_of(values: pd.Series, sep: str = " ") -> np.ndarray:
    """Strings from scalars or (nested) lists of strings ("" for missing), joined with `sep`."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):  # plain strings: vectorized
        return values.astype(object).where(values.notna(), "").astype(str).str.strip().to_numpy(dtype=object)

    def flat(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, (list, tuple, np.ndarray)):
            return sep.join(t for t in (flat(v) for v in value) if t)
        return str(value).strip()
    return np.asarray([flat(v) for v in values], dtype=object)


# ---- Goodreads ------------------------------------------------------------------------------------------

def locate(path: Path) -> tuple[Path, Path]:
    """(books file, interactions file) for a folder or an interactions file; DataError naming what is
    missing (the books file of the same suffix, or one interactions file among several)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.glob("goodreads_interactions*.json*") if _is_json_name(p))
        if len(found) != 1:
            several = f"it holds {[p.name for p in found]}: pass one of them" if found else LAYOUT
            raise DataError(f"{path}: {'no' if not found else 'more than one'} goodreads_interactions file; {several}")
        inter = found[0]
    elif path.name.startswith("goodreads_interactions") and _is_json_name(path):
        inter = require_file(path, LAYOUT)
    else:
        raise DataError(f"{path} is not a Goodreads folder or interactions file; {LAYOUT}")
    suffix = re.sub(r"\.json(\.gz)?$", "", inter.name)[len("goodreads_interactions"):]
    stems = [f"goodreads_books{suffix}"] + (["goodreads_books"] if suffix == "_dedup" else [])
    for stem in stems:
        for ext in (".json.gz", ".json"):
            if (inter.parent / f"{stem}{ext}").is_file():
                return inter.parent / f"{stem}{ext}", inter
    raise DataError(f"{inter.parent / (stems[-1] + '.json.gz')} not found: the books file that goes with {inter.name}")


def _is_json_name(path: Path) -> bool:
    return path.name.endswith((".json", ".json.gz"))


def detect(path: Path) -> bool:
    try:
        return bool(locate(path))
    except DataError:
        return False


def author_names(books: pd.DataFrame, path: Path) -> np.ndarray:
    """Each book's author names ("A, B") from `goodreads_book_authors.json.gz` (author_id, name)."""
    authors = read_json_lines(path, AUTHOR_FIELDS, ["author_id"], "Goodreads authors file (JSON lines with "
                              "author_id, name, ...)")
    names = pd.Series(text_of(authors["name"]), index=authors["author_id"].astype(str).to_numpy())
    names = names[~names.index.duplicated()]
    ids = books["authors"].explode().str.get("author_id").dropna().astype(str)
    found = pd.Series(names.reindex(ids.to_numpy()).to_numpy(), index=ids.index).dropna()
    found = found[found != ""]
    return found.groupby(level=0).agg(", ".join).reindex(range(len(books)), fill_value="").to_numpy(dtype=object)


def read_books(path: Path, authors_file: Path | None = None) -> pd.DataFrame:
    what = "Goodreads books file (JSON lines with book_id, title, description, popular_shelves, ...)"
    frame = read_json_lines(path, BOOK_FIELDS, ["book_id"], what)
    ids = as_str_ids(frame["book_id"].to_numpy(dtype=object))
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataError(f"{path} line {line_of(row, False)}: book_id {ids[row]!r} appears twice; each book once")
    shelves = frame["popular_shelves"].explode()
    names = shelves.str.get("name").dropna().astype(str).str.strip()
    names = names[(names != "") & ~names.str.lower().isin(GENERIC_SHELVES)]
    names = names.groupby(level=0, sort=False).head(MAX_SHELVES)
    joined = names.groupby(level=0).agg(" ".join).reindex(range(len(frame)), fill_value="")
    first = names.groupby(level=0).first().reindex(range(len(frame)), fill_value="")
    return pd.DataFrame({"item_id": ids, "title": text_of(frame["title"]),
                         "description": text_of(frame["description"]),
                         "shelves": joined.to_numpy(dtype=object), "year": text_of(frame["publication_year"]),
                         "category": first.to_numpy(dtype=object)}
                        | ({"authors": author_names(frame, authors_file)} if authors_file else {}))


def read_reads(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """(user ids, book ids, unix seconds, interactions not read, their 0-based lines) of the is_read
    interactions."""
    what = "Goodreads interactions file (JSON lines with user_id, book_id, is_read, date_added, ...)"
    frame = read_json_lines(path, INTERACTION_FIELDS, ["user_id", "book_id", "is_read", "date_added"], what)
    flags = frame["is_read"]
    if pd.api.types.is_bool_dtype(flags):
        read = flags.to_numpy(dtype=bool)
    else:  # parsed line by line: JSON booleans, or "true"/"1" strings
        read = flags.astype(str).str.lower().isin(["true", "1"]).to_numpy(dtype=bool)
    if not read.any():
        raise DataError(f"{path}: no interaction has is_read true, so there are no clicks")
    rows = np.flatnonzero(read)
    times = parse_times(frame["date_added"].iloc[rows], [DATE_FORMAT], path, "date_added", False,
                        "like 'Tue Oct 17 04:38:53 -0700 2017'", utc=True, rows=rows)
    return (as_str_ids(frame["user_id"].to_numpy(dtype=object)[rows]),
            as_str_ids(frame["book_id"].to_numpy(dtype=object)[rows]), times,
            int((~read).sum()), rows)


def load(path: Path, name: str | None = None, negatives: int = 99, seed: int = 0) -> Dataset:
    """A Goodreads folder or interactions file as a leave-last-out dataset (cached)."""
    negatives, seed = check_options(negatives, seed, "goodreads")
    books_file, inter_file = locate(path)
    authors_file = inter_file.parent / AUTHORS_FILE
    authors_file = authors_file if authors_file.is_file() else None
    name = name or "goodreads" + re.sub(r"\.json(\.gz)?$", "", inter_file.name)[len("goodreads_interactions"):]

    def build() -> Dataset:
        books = read_books(books_file, authors_file)
        users, book_ids, times, unread, rows = read_reads(inter_file)
        check_known(book_ids, pd.Index(books["item_id"]), rows, inter_file, False, "book_id", books_file,
                    "use the books file of the same genre subset")
        items = books[books["item_id"].isin(pd.unique(book_ids))].reset_index(drop=True)
        info = {"reader": "goodreads", "source": str(inter_file), "unread_interactions_dropped": unread,
                "books_without_reads_dropped": int(len(books) - len(items))}
        return split_log(name, items, users, book_ids, times, negatives=negatives, seed=seed,
                         text_fields=["title", "description", "shelves"] + (["authors"] if authors_file else []),
                         category_field="category", info=info, source=str(inter_file))

    sources = [books_file, inter_file] + ([authors_file] if authors_file else [])
    return cached_build("goodreads", sources, {"name": name, "negatives": negatives, "seed": seed}, build)


FORMATS = (Format("goodreads", "Goodreads (UCSD Book Graph: goodreads_books + goodreads_interactions JSON lines)",
                  LAYOUT, PROTOCOL, detect, load, (("negatives", 99), ("seed", 0)), scheme=LEAVE_LAST_OUT),)
