"""Item maps: 2-D projections of a run's item table (PCA at once, UMAP cached) for the Embeddings page.

UMAP projections are slow (numba, tens of seconds the first time), so they are cached on disk in a
diskcache store under `cache/umap`, keyed by run id, parameters and a hash of the embedding table,
and can be computed in a background thread while the page shows the PCA view.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from plotly.colors import qualitative

from lego_core.data.schema import Dataset
from lego_core.core.paths import cache_dir, use_numba_cache
from lego_core.explore import umap_fit
from lego_core.explore.frames import plain
from lego_core.explore.lookups import item_frame, item_lookup, once
from lego_core.explore.umap_fit import import_umap  # noqa: F401  (maps.import_umap, as before)

UMAP_DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "seed": 0}
# Distinct colours for categories: plotly's qualitative palettes together (26 + 24 + 24), so a
# dataset's genres each get their own colour; past that the tail is grouped as "other".
PALETTE = list(dict.fromkeys(qualitative.Alphabet + qualitative.Dark24 + qualitative.Light24))
MAX_CATEGORIES = len(PALETTE) - 1  # one colour left for "other"
WEBGL_FROM = 5000  # maps of this many items are drawn with WebGL (Scattergl), not SVG


def _as_matrix(vectors: np.ndarray) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    return arr.reshape(len(arr), -1) if arr.ndim != 2 else arr


def pca_2d(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """[N, D] -> [N, 2] principal components (instant; the view shown while UMAP computes)."""
    from sklearn.decomposition import PCA

    arr = _as_matrix(vectors)
    if len(arr) < 2 or arr.shape[1] < 2:
        return np.zeros((len(arr), 2), dtype=np.float32)
    out = PCA(n_components=2, random_state=seed).fit_transform(arr)
    return out.astype(np.float32)


def umap_key(run_id: str, vectors: np.ndarray, params: dict | None = None) -> str:
    """Cache key: run id + UMAP parameters + a hash of the table (a retrained run gets a new map)."""
    arr = np.ascontiguousarray(_as_matrix(vectors))
    digest = hashlib.sha1(arr.tobytes()).hexdigest()[:16]
    full = {**UMAP_DEFAULTS, **(params or {})}
    return f"umap:{run_id}:{json.dumps(full, sort_keys=True)}:{arr.shape}:{digest}"


def _store():
    """The UMAP diskcache (no pickles); a corrupt one is cleared with a one-line warning. None when
    it cannot be opened at all: maps are then computed but not stored."""
    from lego_core.data.cache import open_diskcache

    return open_diskcache(cache_dir("umap"), "UMAP cache")


def cached_umap(run_id: str, vectors: np.ndarray, params: dict | None = None) -> np.ndarray | None:
    """The stored UMAP projection for this run + parameters + table, or None (also when the
    stored value is unreadable or not [N, 2] float32 for this table: it is dropped, to be recomputed)."""
    from lego_core.data.cache import CORRUPT_ERRORS, describe
    from lego_core.data.io import warn

    key = umap_key(run_id, vectors, params)
    store = _store()
    if store is None:
        return None
    with store:
        try:
            value = store.get(key)
            if value is None:
                return None
            rows = len(_as_matrix(vectors))
            if not isinstance(value, bytes):
                raise TypeError(f"stored value is {type(value).__name__}, not float32 bytes")
            if len(value) != rows * 2 * 4:
                raise ValueError(f"stored value has {len(value)} bytes, expected {rows * 2 * 4}")
            return np.frombuffer(value, dtype=np.float32).reshape(rows, 2).copy()
        except CORRUPT_ERRORS as exc:
            warn(f"UMAP cache {cache_dir('umap')}: the map of run {run_id} is unreadable ({describe(exc)}); "
                 "recomputing it")
            try:
                store.delete(key)
            except CORRUPT_ERRORS:
                pass
            return None




def warm_umap(force: bool = False) -> Future | None:
    """Import umap and run its jitted code once on a tiny matrix in the background UMAP thread, so
    the first real map of this process only runs (the app calls it at start; once per process).
    Only when numba's cache already holds umap's code (`force` to warm anyway): loading it costs
    a second or two, while compiling it (the first process ever) takes a core for tens of seconds;
    that one compile happens with the first real map instead. None when nothing was started."""
    global _WARM
    with _LOCK:
        if _WARM is None:
            if not force and not any(Path(use_numba_cache()).glob("umap_*/*.nbi")):
                return None
            _WARM = _executor().submit(_warm_up)
        return _WARM


def _warm_up() -> None:
    umap_fit.fit(np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32), UMAP_DEFAULTS)


def umap_2d(run_id: str, vectors: np.ndarray, params: dict | None = None) -> np.ndarray:
    """[N, D] -> [N, 2] UMAP projection, computed once per (run, parameters, table) and stored."""
    found = cached_umap(run_id, vectors, params)
    if found is not None:
        return found
    full = {**UMAP_DEFAULTS, **(params or {})}
    arr = _as_matrix(vectors)
    if len(arr) <= max(3, int(full["n_neighbors"])):  # UMAP needs more points than neighbours
        out = pca_2d(arr)
    else:
        out = umap_fit.fit(arr, full)
    store = _store()
    if store is not None:
        from lego_core.data.cache import CORRUPT_ERRORS, describe
        from lego_core.data.io import warn

        with store:  # raw float32 bytes, not a pickle
            try:
                store.set(umap_key(run_id, vectors, params), np.ascontiguousarray(out, dtype=np.float32).tobytes())
            except CORRUPT_ERRORS as exc:  # not stored: only costs a recomputation next time
                warn(f"UMAP cache {cache_dir('umap')} cannot store the map of run {run_id} ({describe(exc)})")
    return out


_EXECUTOR: ThreadPoolExecutor | None = None
_PENDING: dict[str, Future] = {}
_LOCK = threading.Lock()
_WARM: Future | None = None


def _executor() -> ThreadPoolExecutor:
    """The one background UMAP thread (maps and the warm-up queue on it, one at a time)."""
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lego-umap")
    return _EXECUTOR


def start_umap(run_id: str, vectors: np.ndarray, params: dict | None = None) -> Future:
    """Compute the UMAP projection in a background thread (one at a time); the same request while
    it runs returns the same future, so page reruns do not queue duplicates."""
    key = umap_key(run_id, vectors, params)
    with _LOCK:
        future = _PENDING.get(key)
        if future is None or (future.done() and future.exception() is not None):
            future = _executor().submit(umap_2d, run_id, np.array(vectors, copy=True), params)
            _PENDING[key] = future
        return future


_MAPS: OrderedDict = OrderedDict()  # (dataset, run, table stamp, method, params) -> map frame
MAX_MAPS = 4


def embedding_map(run: Any, dataset: Dataset, method: str = "pca", params: dict | None = None) -> pd.DataFrame | None:
    """Item map of a run: item_id, x, y, text, category (top categories, others as "other").

    `method` "pca" always answers; "umap" answers from the cache and returns None when the
    projection is not computed yet (start it with `start_umap`). The last MAX_MAPS maps are kept
    (shared: do not modify), so a page rerun does not project 160,000 items again."""
    try:
        table = (run.embeddings_dir / "items.npy").stat()
    except FileNotFoundError:
        table = None
    key = (id(dataset), str(run.path), table and (table.st_mtime_ns, table.st_size), method,
           json.dumps(params or {}, sort_keys=True))
    with _LOCK:
        if key in _MAPS:
            _MAPS.move_to_end(key)
            return _MAPS[key]
    frame = _embedding_map(run, dataset, method, params)
    if frame is not None and table is not None:
        with _LOCK:
            _MAPS[key] = frame
            while len(_MAPS) > MAX_MAPS:
                _MAPS.popitem(last=False)
    return frame


def _embedding_map(run: Any, dataset: Dataset, method: str, params: dict | None) -> pd.DataFrame | None:
    ids, vectors = run.item_embeddings()
    if method == "pca":
        xy = pca_2d(vectors)
    elif method == "umap":
        xy = cached_umap(run.id, vectors, params)
        if xy is None:
            return None
    else:
        raise ValueError(f"unknown projection {method!r}; use 'pca' or 'umap'")
    frame = pd.DataFrame({"item_id": [str(i) for i in ids], "x": xy[:, 0], "y": xy[:, 1]})
    items = item_lookup(dataset)
    frame = frame.join(items, on="item_id")
    frame["text"] = frame["text"].fillna("")
    frame["category"] = group_categories(frame["category"].fillna(""))
    return frame


def group_categories(category: pd.Series, limit: int = MAX_CATEGORIES) -> pd.Series:
    """Keep the `limit` most frequent categories, name the rest "other" (a readable legend)."""
    category = category.astype(str).replace("", "unknown")
    top = category.value_counts().index[:limit]
    return category.where(category.isin(top), "other")


def hover_labels(frame: pd.DataFrame, chars: int = 140) -> pd.DataFrame:
    """The map frame with what plotly's hover shows escaped (it reads a few HTML tags in labels):
    `hover` (the text, cut to `chars`), `item` (the id) and `category`; `item_id` stays as stored,
    the key a selection is looked up by."""
    return frame.assign(hover=frame["text"].astype(str).str.slice(0, chars).map(plain),
                        item=frame["item_id"].map(plain), category=frame["category"].map(plain))


def highlight(frame: pd.DataFrame, history: Iterable[str] = (), recommended: Iterable[str] = ()) -> pd.DataFrame:
    """Rows of a map frame for a user's history and recommendations, with a `role` column."""
    history, recommended = [str(i) for i in history], [str(i) for i in recommended]
    parts = [frame[frame["item_id"].isin(history)].assign(role="history"),
             frame[frame["item_id"].isin(recommended)].assign(role="recommended")]
    return pd.concat(parts, ignore_index=True)


# ---- colour by any item column; find items and their neighbours ---------------------------
POPULARITY = "popularity"
COLD = "cold"
NUMERIC_SHARE = 0.9  # a text column whose values are numbers this often (years) is numeric


def _as_numbers(values: pd.Series) -> pd.Series | None:
    """The column as floats when it is numeric or nearly all its non-empty values parse as numbers."""
    if pd.api.types.is_bool_dtype(values):
        return None
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    text = values.astype(str).str.strip()
    filled = text[(text != "") & values.notna()]
    numbers = pd.to_numeric(filled, errors="coerce")
    if not len(filled) or numbers.notna().mean() < NUMERIC_SHARE:
        return None
    return pd.to_numeric(text, errors="coerce")


def colour_options(dataset: Dataset) -> dict[str, str]:
    """Item columns a map can be coloured by -> "categorical" or "numeric": the category, every
    items column that is numeric (a year) or has few distinct values (not titles), popularity
    (log clicks) and cold/warm when the dataset has cold items. Once per dataset (`lookups.once`)."""
    return dict(once(dataset, "colour_options", lambda: _colour_options(dataset)))


def _colour_options(dataset: Dataset) -> dict[str, str]:
    items = dataset.items
    out = {"category": "categorical"}
    for column in items.columns:
        if column in ("item_id", dataset.category_field) or column in out:
            continue
        if _as_numbers(items[column]) is not None:
            out[str(column)] = "numeric"
        elif items[column].nunique() <= max(MAX_CATEGORIES, len(items) // 2):
            out[str(column)] = "categorical"
    out[POPULARITY] = "numeric"
    if dataset.cold is not None and dataset.cold.any():
        out[COLD] = "categorical"
    return out


def colour_values(dataset: Dataset, column: str) -> tuple[pd.Series, str]:
    """(values by item_id, colour-bar or legend title) for a `colour_options` column; categories
    past the palette are grouped as "other". Once per dataset and column (shared: do not modify)."""
    return once(dataset, f"colour:{column}", lambda: _colour_values(dataset, column))


def _colour_values(dataset: Dataset, column: str) -> tuple[pd.Series, str]:
    ids = dataset.items["item_id"].astype(str).to_numpy()
    if column == POPULARITY:
        clicks = np.bincount(dataset.seq_items, minlength=dataset.num_items)[: dataset.num_items]
        return pd.Series(np.log10(1 + clicks), index=ids), "log10(1 + clicks)"
    if column == COLD:
        cold = dataset.cold if dataset.cold is not None else np.zeros(dataset.num_items, dtype=bool)
        return pd.Series(np.where(cold, "cold", "warm"), index=ids), "never seen in training"
    if column == "category":
        values = item_frame(dataset)["category"]
        return pd.Series(group_categories(values.fillna("")).to_numpy(), index=ids), "category"
    if column not in dataset.items.columns:
        raise KeyError(f"items of {dataset.name} have no column {column!r}")
    raw = dataset.items[column]
    numbers = _as_numbers(raw)
    if numbers is not None:
        return pd.Series(numbers.to_numpy(), index=ids), column
    return pd.Series(group_categories(raw.fillna("").astype(str)).to_numpy(), index=ids), column


def with_colour(frame: pd.DataFrame, dataset: Dataset, column: str) -> tuple[pd.DataFrame, str, str]:
    """(the map frame with a `colour` column, "categorical" or "numeric", title) for `column`."""
    kind = colour_options(dataset).get(column, "categorical")
    values, title = colour_values(dataset, column)
    values = once(dataset, f"colour-unique:{column}", lambda: values[~values.index.duplicated()])
    return frame.assign(colour=frame["item_id"].map(values).to_numpy()), kind, title


def find_items(dataset: Dataset, query: str, limit: int = 50) -> pd.DataFrame:
    """Items whose text (title and text fields) or id contains `query`, case-insensitively: item_id,
    text, category; those whose text starts with it first."""
    items = item_lookup(dataset).reset_index()
    query = query.strip().lower()
    if not query:
        return items.iloc[:0]
    text = items["text"].str.lower()
    hit = text.str.contains(query, regex=False) | items["item_id"].str.lower().eq(query)
    found = items[hit].assign(_first=~text[hit].str.startswith(query))
    return found.sort_values("_first", kind="stable").drop(columns="_first").head(limit).reset_index(drop=True)


def neighbours(run: Any, dataset: Dataset, item_id: Any, k: int = 10) -> pd.DataFrame:
    """The `k` items nearest to `item_id` in the run's item space (cosine): rank, item_id,
    similarity, text, category."""
    from lego_core.explore.compare import nearest_neighbours
    from lego_core.core.errors import RunError

    ids, vectors = run.item_embeddings()
    ids = [str(i) for i in ids]
    try:
        row = ids.index(str(item_id))
    except ValueError:
        raise RunError(f"item {item_id!r} is not in run {run.id}'s item table") from None
    found = nearest_neighbours(vectors, k, np.array([row]))[0]
    table = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
    unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
    items = item_lookup(dataset)
    out = pd.DataFrame({"rank": np.arange(1, len(found) + 1), "item_id": [ids[i] for i in found],
                        "similarity": unit[found] @ unit[row]})
    return out.join(items, on="item_id")


def explanation_links(frame: pd.DataFrame, explanation: pd.DataFrame) -> pd.DataFrame:
    """Segments from each recommended item to the history items behind it (`explain.explain`
    rows), on a map frame: x0, y0 (history item), x1, y1 (recommended), contribution."""
    xy = frame.drop_duplicates("item_id").set_index("item_id")[["x", "y"]]
    rows = explanation[explanation["item_id"].isin(xy.index) & explanation["history_item_id"].isin(xy.index)]
    start, end = xy.loc[rows["history_item_id"]].to_numpy(), xy.loc[rows["item_id"]].to_numpy()
    return pd.DataFrame({"x0": start[:, 0] if len(rows) else [], "y0": start[:, 1] if len(rows) else [],
                         "x1": end[:, 0] if len(rows) else [], "y1": end[:, 1] if len(rows) else [],
                         "contribution": rows["contribution"].to_numpy()})
