"""What moved between two runs' embedding spaces.

Two maps of the same items are only comparable after rotating, scaling and shifting one onto the
other: `align_maps` does it with Procrustes (scipy) on the 2-D layouts. Whether an item really
moved is read in the full item spaces, not on the maps: its k nearest neighbours (cosine) in each
run, and `moved` = 1 - the share of them both runs agree on. Neighbours are found block by block
(a few MB of scores at a time), never as an N x N matrix, so 160k-item catalogues work; the moved
score is computed for at most `max_items` sampled items (their neighbours still come from every item).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lego_core.core.errors import RunError

BLOCK_SCORES = 2 ** 22  # float32 scores held per block: 16 MB whatever the catalogue size
MAX_ITEMS = 5000  # items whose moved score a comparison computes (a seeded sample beyond that)
_CACHE: OrderedDict = OrderedDict()
MAX_CACHED = 4


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    arr = arr.reshape(len(arr), -1)  # [N, K, D] multi-interest tables are not item tables, but be safe
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.where(norms > 0, norms, 1.0)


def nearest_neighbours(vectors: np.ndarray, k: int = 10, queries: np.ndarray | None = None) -> np.ndarray:
    """[Q, k] indices of each query row's k most cosine-similar rows of `vectors` (itself left
    out), best first; `queries` are row indices (all rows when None). Scores are computed in blocks
    of queries, BLOCK_SCORES at a time, so memory stays flat in N."""
    unit = _unit_rows(vectors)
    n = len(unit)
    queries = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
    k = max(0, min(int(k), n - 1))
    out = np.empty((len(queries), k), dtype=np.int64)
    if k == 0:
        return out
    step = max(1, BLOCK_SCORES // max(n, 1))
    for start in range(0, len(queries), step):
        rows = queries[start:start + step]
        scores = unit[rows] @ unit.T  # [b, N]
        scores[np.arange(len(rows)), rows] = -np.inf  # not its own neighbour
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start:start + len(rows)] = np.take_along_axis(top, order, axis=1)
    return out


def neighbour_overlap(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """[Q] share of each row's neighbours (indices into the same items) that both [Q, k] lists hold."""
    if first.shape[1] == 0:
        return np.ones(len(first))
    both = (first[:, :, None] == second[:, None, :]).any(axis=2)
    return both.sum(axis=1) / first.shape[1]


def align_xy(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(reference, other rotated/scaled/shifted onto it, disparity): scipy's Procrustes, both
    centred and scaled to unit size; disparity is the summed squared residual (0 = same shape)."""
    from scipy.spatial import procrustes

    reference, other = np.asarray(reference, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if len(reference) < 3 or np.ptp(reference, axis=0).max() == 0 or np.ptp(other, axis=0).max() == 0:
        return reference, other, float("nan")  # too few or collapsed points: nothing to align
    first, second, disparity = procrustes(reference, other)
    return first, second, float(disparity)


def align_maps(first: pd.DataFrame, second: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Two map frames (item_id, x, y, ...) restricted to their common items in the first's order,
    the second aligned onto the first; plus the Procrustes disparity."""
    common = first[first["item_id"].isin(set(second["item_id"]))].drop_duplicates("item_id")
    other = second.drop_duplicates("item_id").set_index("item_id").loc[common["item_id"]].reset_index()
    a, b, disparity = align_xy(common[["x", "y"]].to_numpy(), other[["x", "y"]].to_numpy())
    return (common.assign(x=a[:, 0], y=a[:, 1]).reset_index(drop=True),
            other.assign(x=b[:, 0], y=b[:, 1]).reset_index(drop=True), disparity)


class NothingInCommon(RunError):
    """Two runs whose item tables share (almost) no item: there is nothing to compare."""


@dataclass
class Comparison:
    """Neighbour agreement of two runs' item spaces over their common items."""

    item_ids: list[str]  # the items scored (common to both runs; a sample beyond MAX_ITEMS)
    moved: np.ndarray  # [Q] 1 - neighbour overlap: 0 = same neighbours in both runs
    overlap: float  # mean neighbour overlap over the scored items (1.0 = identical neighbourhoods)
    k: int
    common: int  # items both runs have

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"item_id": self.item_ids, "moved": self.moved})


def compare_spaces(ids_a: list, vectors_a: np.ndarray, ids_b: list, vectors_b: np.ndarray, k: int = 10,
                   max_items: int | None = MAX_ITEMS, seed: int = 0) -> Comparison:
    """Neighbour overlap of the common items of two item tables (matched by id)."""
    ids_a, ids_b = [str(i) for i in ids_a], [str(i) for i in ids_b]
    where_b = {item: i for i, item in enumerate(ids_b)}
    rows_a = np.array([i for i, item in enumerate(ids_a) if item in where_b], dtype=np.int64)
    rows_b = np.array([where_b[ids_a[i]] for i in rows_a], dtype=np.int64)
    space_a, space_b = np.asarray(vectors_a)[rows_a], np.asarray(vectors_b)[rows_b]
    queries = np.arange(len(rows_a))
    if max_items is not None and len(queries) > max_items:
        queries = np.sort(np.random.default_rng(seed).choice(len(queries), int(max_items), replace=False))
    first = nearest_neighbours(space_a, k, queries)
    second = nearest_neighbours(space_b, k, queries)
    overlap = neighbour_overlap(first, second)
    return Comparison([ids_a[rows_a[q]] for q in queries], 1.0 - overlap,
                      float(overlap.mean()) if len(overlap) else float("nan"), first.shape[1], len(rows_a))


def _stamp(run: Any) -> tuple:
    path = run.embeddings_dir / "items.npy"
    try:
        return str(run.path), path.stat().st_mtime_ns
    except FileNotFoundError:
        return str(run.path), None


def compare_runs(run_a: Any, run_b: Any, k: int = 10, max_items: int | None = MAX_ITEMS) -> Comparison:
    """`compare_spaces` of two runs' saved item tables; the last few answers are kept (a page
    rerun costs nothing) until either table is rewritten. NothingInCommon when they share < 3 items."""
    key = (_stamp(run_a), _stamp(run_b), int(k), max_items)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    ids_a, vectors_a = run_a.item_embeddings()
    ids_b, vectors_b = run_b.item_embeddings()
    found = compare_spaces(ids_a, vectors_a, ids_b, vectors_b, k, max_items)
    if found.common < 3:
        raise NothingInCommon(f"runs {run_a.id} and {run_b.id} share {found.common} items: nothing to align or "
                              "compare; pick two runs on the same dataset")
    _CACHE[key] = found
    while len(_CACHE) > MAX_CACHED:
        _CACHE.popitem(last=False)
    return found
