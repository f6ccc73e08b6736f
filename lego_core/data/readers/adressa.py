"""Adressa reader (Adresseavisen news event logs, one-week and three-month releases).

Adressa (Gulla et al., "The Adressa Dataset for News Recommendation", WI 2017;
https://reclab.idi.ntnu.no/dataset/) is a folder of event files, one per day, named by date
(`20170101`, ...; optionally gzip-compressed as `20170101.gz`), usually inside `one_week/` or
`three_month/`. Each line is one JSON object: a page view with `eventId`, `userId`, `time` (unix
seconds), `url`, `activeTime`, ... and, for news articles, `id` (the article id, a hash),
`title`, `category1` (like `nyheter|trondheim`), `publishtime`, `keywords`. Views of front pages
and other non-article pages have no `id`.

Items are the articles seen in the events (`item_id` = `id`): `title`, `category` and
`subcategory` (the parts of category1), `url`, `publishtime`, `keywords`, each taken from the
article's first event that has it; the text field is the title. Feedback: an event with an
article id is a click of `userId` on that article at `time`; other events are counted in `info`
and ignored. Protocol: leave-last-out with sampled negatives (`leave_last_out.split_log`,
options `negatives` and `seed`): per user the last click is `test`, the one before `valid`.
"""
from __future__ import annotations

import gzip
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pj

from lego_core.data.processed import cached_build
from lego_core.data.formats import Format
from lego_core.data.io import bad_utf8_line
from lego_core.data.leave_last_out import check_options, split_log
from lego_core.data.schema import LEAVE_LAST_OUT, Dataset
from lego_core.core.errors import DataError

DAY_FILE = re.compile(r"^\d{8}(\.gz)?$")
LAYOUT = ("an Adressa folder holds daily event files named like 20170101 (JSON lines, optionally .gz), "
          "directly or in one_week/ or three_month/")
# the keys read (others, such as eventId, activeTime, profile and author, are skipped unparsed)
SCHEMA = pa.schema([("userId", pa.string()), ("id", pa.string()), ("url", pa.string()), ("title", pa.string()),
                    ("category1", pa.string()), ("time", pa.int64()), ("publishtime", pa.string()),
                    ("keywords", pa.string())])
TYPES = {"userId": str, "id": str, "url": str, "title": str, "category1": str, "time": int, "publishtime": str,
         "keywords": str}
ITEM_FIELDS = ["title", "category", "subcategory", "url", "publishtime", "keywords"]


def day_files(path: Path) -> list[Path]:
    """The event files of an Adressa path: the file itself, the day files of the folder, or of its
    subfolders (one_week/, three_month/, ...) when the folder holds none. Names only."""
    path = Path(path)
    if path.is_file():
        return [path] if DAY_FILE.match(path.name) else []
    if not path.is_dir():
        return []
    files = sorted(p for p in path.iterdir() if p.is_file() and DAY_FILE.match(p.name))
    if not files:
        files = sorted(p for sub in path.iterdir() if sub.is_dir() and not sub.name.startswith(".")
                       for p in sub.iterdir() if p.is_file() and DAY_FILE.match(p.name))
    return files


def is_adressa(path: Path) -> bool:
    return bool(day_files(path))


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _first_bad_line(path: Path) -> str:
    """Where and why a file fails to parse (the slow path, only after pyarrow refused it)."""
    with _open(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                return f"line {number} is not valid JSON ({exc})"
            if not isinstance(event, dict):
                return f"line {number} is not a JSON object"
            for key, kind in TYPES.items():
                value = event.get(key)
                if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                    return f"line {number}: key {key!r} holds {value!r}, expected {kind.__name__}"
    return "it could not be parsed"


def read_events(path: Path) -> pa.Table:
    """One day file -> a table of the SCHEMA fields (absent keys are null)."""
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty: an Adressa day file holds one JSON event per line")
    try:
        with _open(path) as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is not valid gzip data ({exc}); decompress it again or drop the .gz suffix "
                        "from a plain file") from None
    if not data.strip():
        raise DataError(f"{path} holds no events: an Adressa day file holds one JSON event per line")
    line = bad_utf8_line(data)
    if line:
        raise DataError(f"{path} line {line} is not valid UTF-8; Adressa day files are UTF-8 JSON lines: re-save "
                        "the file as UTF-8 or download it again")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a byte-order mark
    options = pj.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
    try:
        return pj.read_json(pa.BufferReader(data), parse_options=options)
    except (pa.ArrowException, UnicodeDecodeError):
        raise DataError(f"{path} {_first_bad_line(path)}; Adressa day files hold one JSON object per line "
                        "(userId, time, id, title, ...)") from None


def _missing(table: pa.Table, column: str, path: Path, rows: np.ndarray) -> None:
    null = table.column(column).is_null().to_numpy(zero_copy_only=False)[rows]
    if null.any():
        raise DataError(f"{path}: the article event of line {int(rows[np.flatnonzero(null)[0]]) + 1} has no "
                        f"{column!r}; every Adressa event needs userId and time")


def read_clicks(files: list[Path]) -> tuple[pd.DataFrame, dict]:
    """(article events: user, item, time + item fields, counts) from all day files, vectorized."""
    frames, info = [], {"events": 0, "non_article_events": 0}
    for path in files:
        table = read_events(path)
        has_id = table.column("id").is_valid().to_numpy(zero_copy_only=False)
        ids = table.column("id").fill_null("").to_numpy(zero_copy_only=False).astype(object)
        article = np.flatnonzero(has_id & (ids != ""))
        info["events"] += table.num_rows
        info["non_article_events"] += table.num_rows - len(article)
        _missing(table, "userId", path, article)
        _missing(table, "time", path, article)
        frame = table.take(pa.array(article)).to_pandas()
        frames.append(frame)
    events = pd.concat(frames, ignore_index=True)
    if not len(events):
        raise DataError(f"{files[0].parent}: no event names an article (key 'id'); {LAYOUT}")
    return events, info


def _items(events: pd.DataFrame) -> pd.DataFrame:
    raw = ["title", "category1", "url", "publishtime", "keywords"]
    fields = events[["id"] + raw].rename(columns={"id": "item_id"})
    for col in raw:  # "" counts as missing so the first non-empty value wins
        fields[col] = fields[col].replace("", None)
    items = fields.groupby("item_id", sort=True).first().reset_index()
    parts = items["category1"].fillna("").str.split("|", n=1, expand=True).reindex(columns=[0, 1]).fillna("")
    items["category"], items["subcategory"] = parts[0], parts[1]
    items = items[["item_id"] + ITEM_FIELDS]
    for col in ITEM_FIELDS:
        items[col] = items[col].fillna("").astype(str)
    return items


def build_adressa(path: Path, negatives: int = 99, seed: int = 0, name: str = "adressa") -> Dataset:
    """Read Adressa day files (uncached; see module doc)."""
    negatives, seed = check_options(negatives, seed, "Adressa")
    files = day_files(path)
    if not files:
        raise DataError(f"{path} holds no Adressa day files: {LAYOUT}")
    events, counts = read_clicks(files)
    items = _items(events)
    info = {"reader": "adressa", "source": str(path), "files": len(files), **counts,
            "feedback": "an event with an article id = a click"}
    return split_log(name, items, events["userId"].to_numpy(dtype=object), events["id"].to_numpy(dtype=object),
                     events["time"].to_numpy(np.int64), negatives=negatives, seed=seed, text_fields=["title"],
                     category_field="category", info=info, source=str(path))


def load_adressa(path: Path, negatives: int = 99, seed: int = 0, name: str = "adressa") -> Dataset:
    """Adressa day files as a Dataset, cached by the files + options."""
    negatives, seed = check_options(negatives, seed, "Adressa")
    files = day_files(path)
    if not files:
        raise DataError(f"{path} holds no Adressa day files: {LAYOUT}")
    return cached_build("adressa", files, {"negatives": negatives, "seed": seed, "name": name},
                        lambda: build_adressa(path, negatives, seed, name))


FORMATS = (Format(
    name="adressa", title="Adressa (daily JSON-lines event logs, one_week / three_month)", layout=LAYOUT,
    protocol="implicit feedback: an event with an article id is a click; leave-last-out per user (last click "
             "= test, second to last = valid) with `negatives` sampled unseen articles, seeded",
    detect=is_adressa,
    read=lambda path, name="adressa", negatives=99, seed=0: load_adressa(Path(path), negatives, seed, name),
    defaults=(("negatives", 99), ("seed", 0)), scheme=LEAVE_LAST_OUT),)
