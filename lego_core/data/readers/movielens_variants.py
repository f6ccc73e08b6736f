"""MovieLens 1M, 10M and the CSV releases (20M, 25M, 32M, latest, latest-small), GroupLens.

Documentation: the README of each release at https://grouplens.org/datasets/movielens/ and
F. Maxwell Harper and Joseph A. Konstan, "The MovieLens Datasets: History and Context", ACM TiiS 2015.

Layouts (a folder, or one of its files):
- ml-1m: `ratings.dat` (UserID::MovieID::Rating::Timestamp), `movies.dat` (MovieID::Title::Genres,
  latin-1), `users.dat` (UserID::Gender::Age::Occupation::Zip-code); `::` separated, no header.
- ml-10m (`ml-10M100K`): `ratings.dat` and `movies.dat` as above (ratings in half stars) and
  `tags.dat` (UserID::MovieID::Tag::Timestamp); no users.dat.
- ml-csv: `ratings.csv` (header userId,movieId,rating,timestamp), `movies.csv` (movieId,title,genres;
  titles such as "American President, The (1995)" are quoted), optional `tags.csv`
  (userId,movieId,tag,timestamp).

Items: title (year cut off), year, genres (space-separated, "(no genres listed)" -> "unknown"),
category = first genre, and for 10M / CSV releases the movie's tags (distinct, first-use order).
users.dat is only used to tell 1M from 10M (the schema has no user features); links.csv and the
tag genome are not read.
Protocol, as for ml-100k (`movielens.py`): every rating is a click whatever its value; each user's
clicks are split leave-last-out by timestamp (`leave_last_out.py`: last = test, second to last =
valid, `negatives` sampled unseen items per valid/test impression). A rating naming a movie that
the movies file lacks is an error (the releases are consistent, so the files do not belong together).
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lego_core.data.arrays import as_str_ids, index_of
from lego_core.data.processed import cached_build
from lego_core.data.formats import Format
from lego_core.data.io import (ContentGaps, check_columns, check_unique, line_of, read_delimited, require_file,
                               to_unix_seconds)
from lego_core.data.leave_last_out import check_options, split_log
from lego_core.data.schema import LEAVE_LAST_OUT, Dataset
from lego_core.core.errors import DataError

_UNIT = b"\x1f"  # `::` is rewritten to this one byte so pandas' C parser reads the files
_TITLE_YEAR = r"^(.*?)\s*\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$"
DAT_LAYOUT = "a MovieLens 1M/10M folder holds ratings.dat and movies.dat ('::'-separated; users.dat for 1M, " \
             "tags.dat for 10M)"
CSV_LAYOUT = "a MovieLens 20M/25M/latest folder holds ratings.csv (userId,movieId,rating,timestamp) and " \
             "movies.csv (movieId,title,genres)"
PROTOCOL = "every rating is a click (any value, as for ml-100k); per user, leave-last-out by timestamp: " \
           "last click = test, second to last = valid, each with `negatives` sampled unseen movies"


def read_colon_file(path: Path, columns: list[str], what: str, may_be_empty: tuple[str, ...] = ()) -> pd.DataFrame:
    """A `::`-separated GroupLens .dat file (no header) with exactly `columns`, as strings.

    UTF-8 (a byte-order mark dropped) is tried first and latin-1 (the 1M encoding) is the fallback.
    Rows with a missing field, rows with extra fields and empty fields other than `may_be_empty`
    (content, such as a title: the caller notes those) raise DataError naming the line."""
    path = require_file(path, what)
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path} is empty: {what}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    shape = "::".join(columns)
    try:
        frame = pd.read_csv(io.StringIO(text.replace("::", _UNIT.decode())), sep=_UNIT.decode(), header=None,
                            dtype=str, keep_default_na=False, na_filter=False, quoting=csv.QUOTE_NONE,
                            index_col=False)
    except pd.errors.ParserError as exc:
        found = re.search(r"line (\d+), saw (\d+)", str(exc))
        where = f"line {found.group(1)} has {found.group(2)} '::'-separated fields" if found else str(exc)
        raise DataError(f"{path} {where}; every line needs {len(columns)}: {shape}") from None
    if frame.shape[1] != len(columns):
        raise DataError(f"{path} line 1 has {frame.shape[1]} '::'-separated fields; every line needs "
                        f"{len(columns)}: {shape}")
    frame.columns = columns
    strict = [c for c in columns if c not in may_be_empty]
    empty = (frame[strict] == "").any(axis=1).to_numpy()
    lenient = (frame[list(may_be_empty)] == "").any(axis=1).to_numpy() if may_be_empty else np.zeros_like(empty)
    if lenient.any():  # pandas pads a short line with "": an empty title is content, a missing field is not
        empty = empty | (lenient & (_separators(text) < len(columns) - 1))
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        column = columns[int(np.flatnonzero((frame.iloc[row] == "").to_numpy())[0])]
        column = next((c for c in strict if frame[c].iloc[row] == ""), column)
        raise DataError(f"{path} line {line_of(row, False)} has no {column} (too few '::'-separated fields?); "
                        f"every line needs {len(columns)}: {shape}")
    return frame


def _separators(text: str) -> np.ndarray:
    """The number of '::' on each non-blank line of `text`."""
    return np.array([line.count("::") for line in text.splitlines() if line.strip()], dtype=np.int64)


def check_known(item_ids: np.ndarray, known: pd.Index, path: Path, column: str, header: bool, items_file: Path) -> None:
    """DataError naming the first interaction (file, line, column) whose item the items file lacks."""
    unknown = index_of(item_ids, known) < 0
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise DataError(f"{path} line {line_of(row, header)}: {column} {item_ids[row]!r} is not in {items_file} "
                        f"({int(unknown.sum())} such rows); use the items file of the same release or drop those rows")


def movie_items(ids, titles, genres) -> pd.DataFrame:
    """Items frame: title without "(year)", year, space-separated genres, category = first genre."""
    titles = pd.Series(list(titles), dtype=object).str.strip()
    parts = titles.str.extract(_TITLE_YEAR)
    genre = pd.Series(list(genres), dtype=object).str.strip()
    genre = genre.where(~genre.isin(["", "(no genres listed)"]), "unknown").str.replace("|", " ", regex=False)
    return pd.DataFrame({"item_id": as_str_ids(np.asarray(ids, dtype=object)),
                         "title": parts[0].where(parts[0].notna(), titles).astype(object).to_numpy(),
                         "year": parts[1].fillna("").astype(object).to_numpy(),
                         "genres": genre.to_numpy(dtype=object),
                         "category": genre.str.split(" ").str[0].to_numpy(dtype=object)})


def add_tags(items: pd.DataFrame, movie_ids: np.ndarray, tags: np.ndarray) -> pd.DataFrame:
    """`tags` column: each movie's distinct tags (case-folded duplicates kept once), first-use order."""
    frame = pd.DataFrame({"item_id": as_str_ids(np.asarray(movie_ids, dtype=object)),
                          "tag": pd.Series(tags, dtype=object).str.strip()})
    frame = frame[frame["tag"] != ""]
    frame = frame[~frame.assign(key=frame["tag"].str.lower()).duplicated(["item_id", "key"])]
    joined = frame.groupby("item_id", sort=False)["tag"].agg(", ".join)
    out = items.copy()
    out["tags"] = joined.reindex(out["item_id"]).fillna("").to_numpy(dtype=object)
    return out


def _dat_files(path: Path) -> dict[str, Path]:
    folder = path if path.is_dir() else path.parent
    return {name: folder / f"{name}.dat" for name in ("ratings", "movies", "users", "tags")}


def _csv_files(path: Path) -> dict[str, Path]:
    folder = path if path.is_dir() else path.parent
    return {name: folder / f"{name}.csv" for name in ("ratings", "movies", "tags")}


def detect_1m(path: Path) -> bool:
    files = _dat_files(Path(path))
    return files["ratings"].is_file() and files["movies"].is_file() and files["users"].is_file()


def detect_10m(path: Path) -> bool:
    files = _dat_files(Path(path))
    return files["ratings"].is_file() and files["movies"].is_file() and not files["users"].is_file()


def detect_csv(path: Path) -> bool:
    files = _csv_files(Path(path))
    if not (files["ratings"].is_file() and files["movies"].is_file()):
        return False
    with open(files["ratings"], "rb") as handle:
        head = handle.readline(200).decode("utf-8-sig", "replace").strip().split(",")
    return head[:2] == ["userId", "movieId"]


def _read_dat(files: dict[str, Path], gaps: ContentGaps) -> tuple[pd.DataFrame, tuple]:
    movies = read_colon_file(files["movies"], ["MovieID", "Title", "Genres"], "MovieLens movies.dat "
                             "(MovieID::Title::Genres)", may_be_empty=("Title", "Genres"))
    check_unique(movies["MovieID"], files["movies"], "MovieID (field 1)", header=False)
    gaps.empty(movies["Title"], files["movies"], False, "item", "no title")
    items = movie_items(movies["MovieID"], movies["Title"], movies["Genres"])
    if files["tags"].is_file():
        tag = read_colon_file(files["tags"], ["UserID", "MovieID", "Tag", "Timestamp"],
                              "MovieLens 10M tags.dat (UserID::MovieID::Tag::Timestamp)")
        items = add_tags(items, tag["MovieID"].to_numpy(), tag["Tag"].to_numpy())
    ratings = read_colon_file(files["ratings"], ["UserID", "MovieID", "Rating", "Timestamp"],
                              "MovieLens ratings.dat (UserID::MovieID::Rating::Timestamp)")
    item_ids = as_str_ids(ratings["MovieID"].to_numpy(dtype=object))
    check_known(item_ids, pd.Index(items["item_id"]), files["ratings"], "MovieID (field 2)", False, files["movies"])
    times = to_unix_seconds(ratings["Timestamp"], files["ratings"], "Timestamp (field 4)", header=False)
    return items, (as_str_ids(ratings["UserID"].to_numpy(dtype=object)), item_ids, times)


def _read_csv(files: dict[str, Path], gaps: ContentGaps) -> tuple[pd.DataFrame, tuple]:
    hint = "MovieLens CSV files have a header line"
    movies = read_delimited(require_file(files["movies"], "MovieLens movies.csv (movieId,title,genres)"), ",",
                            header=True)
    check_columns(movies, ["movieId", "title", "genres"], files["movies"], hint)
    _no_empty(movies, ["movieId"], files["movies"])
    check_unique(movies["movieId"], files["movies"], "movieId", header=True)
    gaps.empty(movies["title"], files["movies"], True, "item", "no title")
    items = movie_items(movies["movieId"], movies["title"], movies["genres"])
    if files["tags"].is_file():
        tags = read_delimited(files["tags"], ",", header=True)
        check_columns(tags, ["movieId", "tag"], files["tags"], hint)
        items = add_tags(items, tags["movieId"].to_numpy(), tags["tag"].to_numpy())
    ratings = read_delimited(require_file(files["ratings"], "MovieLens ratings.csv (userId,movieId,rating,timestamp)"),
                             ",", header=True)
    check_columns(ratings, ["userId", "movieId", "timestamp"], files["ratings"], hint)
    _no_empty(ratings, ["userId", "movieId", "timestamp"], files["ratings"])
    item_ids = as_str_ids(ratings["movieId"].to_numpy(dtype=object))
    check_known(item_ids, pd.Index(items["item_id"]), files["ratings"], "movieId", True, files["movies"])
    times = to_unix_seconds(ratings["timestamp"], files["ratings"], "timestamp", header=True)
    return items, (as_str_ids(ratings["userId"].to_numpy(dtype=object)), item_ids, times)


def _no_empty(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    for col in columns:
        empty = (frame[col].str.strip() == "").to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise DataError(f"{path}: column {col!r} line {line_of(row, True)} is empty (too few ',' fields?); "
                            f"every row needs {', '.join(frame.columns)}")


def _load(kind: str, path: Path, name: str | None, negatives: int, seed: int) -> Dataset:
    negatives, seed = check_options(negatives, seed, kind)
    path = Path(path)
    files = _csv_files(path) if kind == "ml-csv" else _dat_files(path)
    for f in (files["ratings"], files["movies"]):
        require_file(f, DAT_LAYOUT if kind != "ml-csv" else CSV_LAYOUT)
    sources = [files["ratings"], files["movies"]] + ([files["tags"]] if files["tags"].is_file() else [])
    name = name or kind

    def build() -> Dataset:
        gaps = ContentGaps()
        items, (users, item_ids, times) = _read_csv(files, gaps) if kind == "ml-csv" else _read_dat(files, gaps)
        text = ["title", "genres"] + (["tags"] if "tags" in items.columns else [])
        return gaps.attach(split_log(name, items, users, item_ids, times, negatives=negatives, seed=seed, text_fields=text,
                         category_field="category", info={"reader": kind, "source": str(files["ratings"])},
                         source=str(files["ratings"])))

    return cached_build(kind, sources, {"name": name, "negatives": negatives, "seed": seed}, build)


def load_ml1m(path: Path, name: str | None = None, negatives: int = 99, seed: int = 0) -> Dataset:
    """MovieLens 1M from its folder (ratings.dat, movies.dat, users.dat), cached."""
    return _load("ml-1m", path, name, negatives, seed)


def load_ml10m(path: Path, name: str | None = None, negatives: int = 99, seed: int = 0) -> Dataset:
    """MovieLens 10M from its folder (ratings.dat, movies.dat, tags.dat when present), cached."""
    return _load("ml-10m", path, name, negatives, seed)


def load_csv(path: Path, name: str | None = None, negatives: int = 99, seed: int = 0) -> Dataset:
    """MovieLens 20M/25M/32M/latest from its folder (ratings.csv, movies.csv, optional tags.csv), cached."""
    return _load("ml-csv", path, name, negatives, seed)


def _formats() -> tuple[Format, ...]:
    defaults = (("negatives", 99), ("seed", 0))
    return (Format("ml-1m", "MovieLens 1M (ratings.dat, movies.dat, users.dat)", DAT_LAYOUT, PROTOCOL,
                   detect_1m, load_ml1m, defaults, scheme=LEAVE_LAST_OUT),
            Format("ml-10m", "MovieLens 10M (ratings.dat, movies.dat, tags.dat)", DAT_LAYOUT, PROTOCOL,
                   detect_10m, load_ml10m, defaults, scheme=LEAVE_LAST_OUT),
            Format("ml-csv", "MovieLens 20M/25M/32M/latest (ratings.csv, movies.csv)", CSV_LAYOUT, PROTOCOL,
                   detect_csv, load_csv, defaults, scheme=LEAVE_LAST_OUT))


FORMATS = _formats()
