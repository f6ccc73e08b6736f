"""Reading user files into DataFrames with errors that name the file, line or column and the fix.

Every reader goes through these helpers so encoding, emptiness, missing columns, duplicate ids and
timestamp problems are reported the same way everywhere.
"""
from __future__ import annotations

import csv
import re
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lego_core.core.errors import DataError

PROGRESS_MIN_BYTES = 20_000_000  # files larger than this show a tqdm bar while read
# the unix seconds a datetime64[ns] holds (1677-09-22 .. 2262-04-11): later steps turn times into
# datetimes, so anything outside (years 1019 or 2300, 1e13 "seconds" that are milliseconds) is refused here
EARLIEST_SECONDS = -9_223_372_036
LATEST_SECONDS = 9_223_372_036
CONTENT_GAPS = "content_gaps"  # Dataset.info key: the notes of a ContentGaps collector
_SCALAR_KINDS = {"string", "bytes", "integer", "floating", "mixed-integer-float", "decimal", "boolean",
                 "datetime", "datetime64", "date", "time", "timedelta", "timedelta64", "empty", "complex"}


class DataWarning(UserWarning):
    """Rows were dropped from a dataset (unknown items, duplicates, too-short users)."""


_NOTES: ContextVar[list[str] | None] = ContextVar("lego_data_notes", default=None)


@contextmanager
def collecting_notes() -> Iterator[list[str]]:
    """Collect every `warn` made in this thread (the app shows them beside the result). Unlike
    `warnings.catch_warnings`, whose state is process-wide, another thread entering or leaving one
    (the UMAP worker does) cannot make a note go missing."""
    notes: list[str] = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def warn(message: str) -> None:
    """Emit a DataWarning (on one line: newlines and runs of spaces folded) pointing at the caller
    of the reader, not at this helper; also into the `collecting_notes` list when one is open."""
    text = " ".join(str(message).split())
    notes = _NOTES.get()
    if notes is not None:
        notes.append(text)
    warnings.warn(text, DataWarning, stacklevel=3)


class ContentGaps:
    """The lenient-content policy every reader shares: strict on structure, lenient on content.

    A reader that finds rows with a content gap (an empty title or abstract, an unknown category,
    an odd rating) keeps them and notes the gap here (`empty` or `note`): each note is one line
    ("5 items have no title; first at movies.csv line 8478") and is warned at once. `attach` puts
    the notes in `Dataset.info["content_gaps"]`, so they survive the reader's cache; registration
    stores them in the manifest and refuses them under `strict` (`refuse_gaps`)."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, count: int, noun: str, gap: str, path: Path, line: int) -> None:
        """Record `count` rows (`noun`, e.g. "item") that have `gap` (e.g. "no title"), the first on `line`."""
        if count:
            many = count != 1
            text = f"{count:,} {noun}{'s' if many else ''} {'have' if many else 'has'} {gap}; first at " \
                   f"{Path(path).name} line {line}"
            self.notes.append(text)
            warn(text)

    def empty(self, values: pd.Series, path: Path, header: bool, noun: str, gap: str,
              rows: np.ndarray | None = None) -> None:
        """Note the rows whose value is missing or blank (`rows`: their 0-based data rows when
        `values` is a subset of the file's rows)."""
        blank = (values.isna() | (values.astype(str).str.strip() == "")).to_numpy(dtype=bool)
        if blank.any():
            first = int(np.flatnonzero(blank)[0])
            self.note(int(blank.sum()), noun, gap, path, line_of(rows[first] if rows is not None else first, header))

    def attach(self, dataset):
        """`dataset` with the notes in its info (returned, for `return gaps.attach(split_log(...))`)."""
        dataset.info[CONTENT_GAPS] = list(self.notes)
        return dataset


def refuse_gaps(notes: list[str]) -> None:
    """The `--strict` refusal: DataError on the first content gap noted at reading (none: nothing)."""
    if notes:
        more = f" (and {len(notes) - 1} more kinds of gap)" if len(notes) > 1 else ""
        raise DataError(f"{notes[0]}{more}; --strict refuses content gaps: fill them in, or register without "
                        "--strict to keep those rows")


def int_option(value, option: str, low: int, high: int, what: str = "") -> int:
    """`value` as an int in [low, high], else DataError naming the option (strings, bools and
    fractional numbers are refused; whole floats such as 2000.0 from a YAML file are accepted)."""
    number = None
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        number = int(value)
    elif isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        number = int(value)
    label = f"{what} option {option}" if what else f"option {option}"
    if number is None:
        raise DataError(f"{label} must be a whole number, got {value!r}")
    if number < low:
        raise DataError(f"{label} must be >= {low:,}, got {number:,}")
    if number > high:
        raise DataError(f"{label} must be <= {high:,}, got {number:,}")
    return number


def require_file(path: Path, what: str) -> Path:
    """The path, or DataError saying which file is missing and what it should be."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: {what}")
    return path


def _first_bad_utf8_line(path: Path) -> int:
    """1-based number of the first line that is not valid UTF-8 (0 when none is found)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def bad_utf8_line(data: bytes) -> int:
    """1-based line of the first byte of `data` that is not UTF-8 (0 when it all decodes)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1
    return 0


def first_line(path: Path, limit: int = 1_000_000) -> str:
    """The first line of a text file without its line end or a UTF-8 byte-order mark (detection:
    cheap, undecodable bytes replaced)."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        return handle.readline(limit).rstrip("\r\n")


def encoding_error(path: Path) -> DataError:
    """The DataError for a file that is not UTF-8, naming its first bad line."""
    line = _first_bad_utf8_line(path)
    where = f" (line {line})" if line else ""
    return DataError(f"{path} is not valid UTF-8{where}: re-save the file with UTF-8 encoding")


def read_delimited(path: Path, sep: str, *, header: bool, names: list[str] | None = None,
                   encoding: str = "utf-8-sig", desc: str | None = None) -> pd.DataFrame:
    """Read a delimited text file as strings (no NA guessing, no quote processing for TSV); a UTF-8
    byte-order mark (spreadsheet tools write one) is dropped.

    Raises DataError for a missing/empty file, a non-UTF-8 file and rows with too many fields.
    Large files show a byte-based tqdm progress bar.
    """
    path = Path(path)
    size = path.stat().st_size if path.is_file() else -1
    if size < 0:
        raise DataError(f"{path} not found")
    if size == 0:
        raise DataError(f"{path} is empty: it needs {'a header line and ' if header else ''}data rows")
    quoting = csv.QUOTE_NONE if sep in ("\t", "|") else csv.QUOTE_MINIMAL
    try:
        with open(path, "rb") as raw, tqdm.wrapattr(raw, "read", total=size, desc=desc or path.name,
                                                    disable=size < PROGRESS_MIN_BYTES) as handle, \
                warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # else a long first row is cut silently
            frame = pd.read_csv(handle, sep=sep, header=0 if header else None, names=names,
                                dtype=str, keep_default_na=False, na_filter=False,
                                quoting=quoting, encoding=encoding, index_col=False)
    except pd.errors.ParserWarning:
        raise DataError(f"{path} line {2 if header else 1} has more {_sep_name(sep)} fields than the "
                        f"{'header line' if header else 'column names'}; every row needs the same number") from None
    except UnicodeDecodeError:
        raise encoding_error(path) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: it needs {'a header line and ' if header else ''}data rows") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: {' '.join(str(exc).split())}; every row needs the same number of "
                        f"{_sep_name(sep)} fields") from None
    if len(frame) == 0:
        raise DataError(f"{path} has no data rows")
    return frame


def _sep_name(sep: str) -> str:
    return "tab-separated" if sep == "\t" else f"{sep!r}-separated"


def first_short_line(path: Path, sep: str, fields: int) -> int:
    """1-based number of the first non-blank line with fewer than `fields` fields (0 when none).

    pandas pads short rows with empty strings, which hides a truncated row; this counts the
    separators per line on the raw bytes instead (vectorized; for unquoted formats like TSV)."""
    data = np.fromfile(path, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    if not len(data):
        return 0
    if data[-1] != 10:
        ends = np.append(ends, len(data))
    starts = np.concatenate([[0], ends[:-1] + 1])
    seps = np.flatnonzero(data == ord(sep))
    counts = np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
    length = ends - starts - (data[np.maximum(ends - 1, 0)] == 13)
    bad = np.flatnonzero((counts < fields) & (length > 0))
    return int(bad[0]) + 1 if len(bad) else 0


def read_table(path: Path, desc: str | None = None) -> pd.DataFrame:
    """A user table: CSV/TSV (UTF-8, header line) or Parquet, chosen by the file extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"{path} not found")
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
            reason = re.sub(r"^Could not open Parquet input source '[^']*': ", "", " ".join(str(exc).split()))
            raise DataError(f"{path} is not a readable Parquet file ({type(exc).__name__}: {reason})") from None
        if len(frame) == 0:
            raise DataError(f"{path} has no rows")
        frame.columns = [str(c) for c in frame.columns]
        return frame
    if suffix in (".csv", ".tsv", ".txt"):
        sep = "\t" if suffix == ".tsv" else ","
        frame = read_delimited(path, sep, header=True, desc=desc)
        frame.columns = [str(c).strip() for c in frame.columns]
        return frame
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv or .parquet")


def check_columns(frame: pd.DataFrame, required: list[str], path: Path, hint: str = "") -> None:
    """DataError naming the missing columns and the columns the file has."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; it has {list(frame.columns)}"
                        + (f"; {hint}" if hint else ""))


def line_of(row: int, header: bool) -> int:
    """1-based file line of 0-based data row `row`."""
    return int(row) + (2 if header else 1)


def check_ids(values: pd.Series, path: Path, column: str, header: bool) -> None:
    """The ids of an items file (stripped strings): none empty, none repeated; a one-line
    DataError naming the line and the column otherwise."""
    empty = (values == "").to_numpy()
    if empty.any():
        raise DataError(f"{path} line {line_of(int(np.flatnonzero(empty)[0]), header)} has an empty {column}")
    check_unique(values, path, column, header)


def check_unique(values: pd.Series, path: Path, column: str, header: bool) -> None:
    """DataError naming a duplicated id and the lines it is on."""
    dup = values.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        first = values.iloc[rows[0]]
        first = first.item() if isinstance(first, np.generic) else first
        lines = [line_of(r, header) for r in rows[values.iloc[rows].to_numpy() == first][:5]]
        raise DataError(f"{path}: duplicate id {first!r} in column {column!r} (lines {lines}); "
                        f"{int(dup.sum())} rows share an id. Each id must appear once")


def to_unix_seconds(values: pd.Series, path: Path, column: str, header: bool) -> np.ndarray:
    """Numeric timestamps (unix seconds; floats are floored) or a datetime column -> int64.

    A value that is not a number raises DataError naming the column, the line and the value.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{path}: column {column!r} line {line_of(row, header)} has no timestamp")
        seconds = _datetime_seconds(values)
        check_time_range(seconds, values, path, column, header)
        return seconds
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"{path}: column {column!r} holds booleans, not timestamps (unix seconds)")
    check_scalars(values, path, column, header)
    if pd.api.types.is_integer_dtype(values) and values.dtype.kind == "i" and not values.isna().any():
        return values.to_numpy(np.int64)  # exact, no round trip through float
    numbers = pd.to_numeric(values, errors="coerce")
    floats = numbers.to_numpy(dtype=float, na_value=np.nan)
    bad = numbers.isna().to_numpy() | ~np.isfinite(floats)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: column {column!r} line {line_of(row, header)} has non-numeric timestamp "
                        f"{values.iloc[row]!r}; timestamps must be unix seconds (numbers)")
    check_time_range(floats, values, path, column, header)
    return np.floor(floats).astype(np.int64)


def _datetime_seconds(values: pd.Series) -> np.ndarray:
    """Unix seconds of a datetime column (naive = UTC), exact at any resolution (pandas 3 parses to us)."""
    stamp = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    return stamp.dt.as_unit("s").astype("int64").to_numpy(np.int64)


def check_time_range(seconds: np.ndarray, values: pd.Series, path: Path, column: str, header: bool,
                     rows: np.ndarray | None = None) -> None:
    """DataError naming the file, column, line and value of the first time outside what a datetime
    holds (EARLIEST_SECONDS..LATEST_SECONDS: years 1678..2262); `rows`: the file's 0-based data
    row of each value when `values` is a subset."""
    outside = (seconds < EARLIEST_SECONDS) | (seconds > LATEST_SECONDS)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise _outside(path, column, line_of(rows[row] if rows is not None else row, header), values.iloc[row])


def _outside(path: Path, column: str, line: int, value) -> DataError:
    return DataError(f"{path}: column {column!r} line {line} has time {_short(value)}, outside years 1678-2262 "
                     "(unix seconds +-9.2e9; milliseconds? divide by 1000); fix or remove that row")


def parse_times(text: pd.Series, formats: list[str], path: Path, column: str, header: bool, example: str,
                utc: bool = False, rows: np.ndarray | None = None) -> np.ndarray:
    """Unix seconds (int64) of date strings in the first of `formats` that parses each; DataError
    naming the line for one that matches none ("is not `example`", e.g. "a time like '7/3/2019 6:36:08 AM'") or outside
    the years a datetime holds. `rows`: the file's 0-based data row of each value (a subset)."""
    text = text.astype(str).str.strip().reset_index(drop=True)
    stamps = None
    for fmt in formats:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=utc)
        stamps = parsed if stamps is None else stamps.fillna(parsed)
    bad = stamps.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        line = line_of(rows[row] if rows is not None else row, header)
        year = re.search(r"\b(\d{4,})\b", text.iloc[row])
        if year and not 1678 <= int(year.group(1)) <= 2262:
            raise _outside(path, column, line, text.iloc[row])
        raise DataError(f"{path} line {line}: {column} {text.iloc[row]!r} is not {example}; fix or remove that line")
    seconds = _datetime_seconds(stamps)
    check_time_range(seconds, text, path, column, header, rows)
    return seconds


def check_scalars(values: pd.Series, path: Path, column: str, header: bool) -> None:
    """DataError naming the file, column and line when a (Parquet) column holds lists, arrays or
    dicts where single values (ids, timestamps, labels) belong."""
    if values.dtype != object or pd.api.types.infer_dtype(values, skipna=True) in _SCALAR_KINDS:
        return
    nested = values.map(lambda v: isinstance(v, (list, tuple, set, dict, np.ndarray))).to_numpy(dtype=bool)
    if nested.any():
        row = int(np.flatnonzero(nested)[0])
        raise DataError(f"{path}: column {column!r} holds lists (line {line_of(row, header)}: "
                        f"{_short(values.iloc[row])}); it needs one value per row, so explode the lists into rows")


def _short(value) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    text = " ".join(repr(value.tolist() if isinstance(value, np.ndarray) else value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def text_column(values: pd.Series) -> pd.Series:
    """A column as clean strings ("" for missing) so every item field is text."""
    return values.astype(object).where(values.notna(), "").astype(str)


def check_known(ids: np.ndarray, known: pd.Index, rows: np.ndarray, path: Path, header: bool, what: str,
                where: Path, fix: str) -> None:
    """DataError naming the first of `ids` (read from `path`, data rows `rows`) missing from `known`
    (the ids of `where`), with how many there are and `fix`."""
    unknown = known.get_indexer(pd.Index(ids)) < 0
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise DataError(f"{path} line {line_of(rows[i], header)}: {what} {ids[i]!r} is not in {where} "
                        f"({int(unknown.sum())} such rows); {fix}")
