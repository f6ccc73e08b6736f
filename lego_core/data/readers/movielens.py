"""MovieLens-100k: from the files inside the `recbole` wheel (the embedded default) or from an
original GroupLens `ml-100k` folder (u.data + u.item). Both give the same items (title, year,
genres, category = first genre) and the leave-last-out splits of `leave_last_out.py`.

recbole is never imported (its import pulls heavy dependencies); only its data files are read.
"""
from __future__ import annotations

import importlib.util
import re
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd

from lego_core.data.arrays import as_str_ids
from lego_core.data.processed import cached_build
from lego_core.data.formats import Format
from lego_core.data.io import check_columns, check_unique, read_delimited, require_file, to_unix_seconds
from lego_core.data.leave_last_out import check_options, split_log
from lego_core.data.schema import LEAVE_LAST_OUT, Dataset
from lego_core.core.errors import DataError

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")
TEXT_FIELDS = ["title", "genres"]


def packaged_ml100k_folder() -> Path | None:
    """`<site-packages>/recbole/dataset_example/ml-100k` if the recbole wheel is installed.

    `find_spec` of a top-level package locates it without importing it; site-packages paths are
    the fallback."""
    candidates = []
    try:
        spec = importlib.util.find_spec("recbole")
        if spec is not None and spec.submodule_search_locations:
            candidates += [Path(p) for p in spec.submodule_search_locations]
    except (ImportError, ValueError):
        pass
    for key in ("purelib", "platlib"):
        candidates.append(Path(sysconfig.get_paths()[key]) / "recbole")
    for root in candidates:
        folder = root / "dataset_example" / "ml-100k"
        if (folder / "ml-100k.item").is_file() and (folder / "ml-100k.inter").is_file():
            return folder
    return None


def _items_frame(ids, titles, years, genres: list[str]) -> pd.DataFrame:
    genres = [g if g else "unknown" for g in genres]
    years = [y if len(y) == 4 and y.isdigit() else "" for y in years]  # recbole writes "unkonwn"
    return pd.DataFrame({"item_id": as_str_ids(ids), "title": list(titles), "year": years,
                         "genres": genres, "category": [g.split(" ")[0] for g in genres]})


def _strip_header(frame: pd.DataFrame) -> pd.DataFrame:
    """recbole headers look like `item_id:token`; keep the name before the colon."""
    frame.columns = [c.split(":")[0].strip() for c in frame.columns]
    return frame


def read_packaged_items(path: Path) -> pd.DataFrame:
    frame = _strip_header(read_delimited(require_file(path, "recbole ml-100k.item"), "\t", header=True))
    check_columns(frame, ["item_id", "movie_title", "release_year", "class"], path,
                  "recbole .item files are tab-separated with a `name:type` header")
    check_unique(frame["item_id"], path, "item_id", header=True)
    return _items_frame(frame["item_id"], frame["movie_title"], frame["release_year"],
                        [" ".join(g.split()) for g in frame["class"]])


def read_grouplens_items(path: Path) -> pd.DataFrame:
    """u.item: id|title (year)|release date|video date|url|19 genre flags, latin-1."""
    frame = read_delimited(require_file(path, "GroupLens u.item"), "|", header=False, encoding="latin-1")
    if frame.shape[1] < 5 + len(GENRES):
        raise DataError(f"{path} has {frame.shape[1]} '|'-separated columns; GroupLens u.item needs "
                        f"{5 + len(GENRES)} (id, title, release date, video date, url, 19 genre flags)")
    check_unique(frame[0], path, "movie id (column 1)", header=False)
    flags = frame.iloc[:, 5:5 + len(GENRES)].apply(pd.to_numeric, errors="coerce")
    if flags.isna().any().any():
        row = int(np.flatnonzero(flags.isna().any(axis=1).to_numpy())[0])
        raise DataError(f"{path} line {row + 1}: genre flags (columns 6-24) must be 0 or 1")
    names = np.array(GENRES, dtype=object)
    flag_rows = flags.to_numpy(dtype=bool)
    genres = [" ".join(names[f]) for f in flag_rows]
    titles, years = [], []
    for title, date in zip(frame[1], frame[2]):
        match = re.match(r"^(.*?)\s*\((\d{4})\)\s*$", title)
        titles.append(match.group(1) if match else title.strip())
        year = re.search(r"(\d{4})\s*$", date)
        years.append(year.group(1) if year else (match.group(2) if match else ""))
    return _items_frame(frame[0], titles, years, genres)


def read_interactions(path: Path, header: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user ids, item ids, unix times) from ml-100k.inter (header) or u.data (no header)."""
    what = "recbole ml-100k.inter" if header else "GroupLens u.data (user, item, rating, timestamp)"
    frame = read_delimited(require_file(path, what), "\t", header=header)
    if header:
        frame = _strip_header(frame)
        check_columns(frame, ["user_id", "item_id", "timestamp"], path)
        cols = ("user_id", "item_id", "timestamp")
    else:
        if frame.shape[1] < 4:
            raise DataError(f"{path} has {frame.shape[1]} tab-separated columns; u.data needs 4: "
                            "user id, item id, rating, timestamp")
        cols = (0, 1, 3)
    times = to_unix_seconds(frame[cols[2]], path, "timestamp" if header else "timestamp (column 4)", header)
    return as_str_ids(frame[cols[0]]), as_str_ids(frame[cols[1]]), times


def _build(items: pd.DataFrame, inter: tuple, source: str, negatives: int, seed: int) -> Dataset:
    users, item_ids, times = inter
    return split_log("ml-100k", items, users, item_ids, times, negatives=negatives, seed=seed,
                     text_fields=TEXT_FIELDS, category_field="category",
                     info={"reader": "movielens", "source": source}, source=source)


def load_packaged_ml100k(negatives: int = 99, seed: int = 0, folder: Path | None = None) -> Dataset:
    """MovieLens-100k from the recbole wheel's files (cached)."""
    negatives, seed = check_options(negatives, seed, "ml-100k")
    folder = Path(folder) if folder else packaged_ml100k_folder()
    if folder is None:
        raise DataError("MovieLens-100k files not found: install them with "
                        "`pip install --no-deps recbole==1.2.1` (see requirements-nodeps.txt)")
    files = [folder / "ml-100k.item", folder / "ml-100k.inter"]
    return cached_build("ml-100k-recbole", files, {"negatives": negatives, "seed": seed},
                        lambda: _build(read_packaged_items(files[0]), read_interactions(files[1], True),
                                       str(folder), negatives, seed))


def is_grouplens_folder(folder: Path) -> bool:
    return (Path(folder) / "u.data").is_file() and (Path(folder) / "u.item").is_file()


def load_grouplens(folder: Path, negatives: int = 99, seed: int = 0) -> Dataset:
    """MovieLens-100k from an original GroupLens folder holding u.data and u.item (cached)."""
    negatives, seed = check_options(negatives, seed, "ml-100k")
    folder = Path(folder)
    files = [folder / "u.item", folder / "u.data"]
    for f in files:
        require_file(f, "a GroupLens ml-100k folder holds u.data and u.item")
    return cached_build("ml-100k-grouplens", files, {"negatives": negatives, "seed": seed},
                        lambda: _build(read_grouplens_items(files[0]), read_interactions(files[1], False),
                                       str(folder), negatives, seed))


def _grouplens_folder(path: Path) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


def read_grouplens(path: Path, name: str | None = None, negatives: int = 99, seed: int = 0) -> Dataset:
    """`load_grouplens` for the format registry: a GroupLens ml-100k folder (or a file in it)."""
    dataset = load_grouplens(_grouplens_folder(path), negatives=negatives, seed=seed)
    dataset.name = name or dataset.name
    return dataset


FORMATS = (Format("movielens-100k", "MovieLens 100k, GroupLens folder (u.data, u.item)",
                  "a GroupLens ml-100k folder holds u.data (tab-separated user, item, rating, timestamp) and "
                  "u.item ('|'-separated, latin-1)",
                  "every rating is a click (any value); per user, leave-last-out by timestamp: last click = "
                  "test, second to last = valid, each with `negatives` sampled unseen movies",
                  lambda path: is_grouplens_folder(_grouplens_folder(path)), read_grouplens,
                  (("negatives", 99), ("seed", 0)), scheme=LEAVE_LAST_OUT),)
