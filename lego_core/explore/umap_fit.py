"""UMAP for item maps of any size: umap-learn loaded with numba's disk cache on, fitted on at most
SAMPLE items; the other items are placed at the similarity-weighted mean of their nearest sampled
items' positions. At MIND-large size (160,000 items) a fit on every item takes minutes on one
core (NN-descent and 200 layout epochs over every point), the sample's a fraction of that, and the
placement of the rest a query of their nearest sampled items (bench/app_scale.py has the figures).

umap-learn's own `transform` places new points the same way first, then refines them with layout
epochs against the sample: several times slower than the placement here for little visible change
on a 2-D overview, so it is not used."""
from __future__ import annotations

import sys

import numpy as np

from lego_core.core.paths import use_numba_cache

SMALL_TABLE = 4096  # below this many rows UMAP computes all pairwise distances instead of NN-descent
SAMPLE = 15_000  # items UMAP is fitted on (200 layout epochs past 10,000); the rest are placed
PLACE_NEIGHBOURS = 10
EXACT_PAIRS = 50_000_000  # up to this many (row, sampled row) pairs the nearest are found exactly
CHUNK = 4096  # rows placed per matrix product (CHUNK x SAMPLE float32: about 250 MB)


def import_umap():
    """`umap` with numba's disk cache on for its own jitted functions. umap-learn (0.5) marks almost
    none of them `cache=True` (pynndescent marks most), so each new process compiled
    smooth_knn_dist, compute_membership_strengths, fast_knn_indices and the layout epoch again
    (most of a first map's time). Their caching is switched on here, before their first call; the
    two tiny tau_rand functions compile at import (explicit signatures) and stay so. A function whose Python body backs two dispatchers (the serial and the
    parallel layout epoch) is cached for its serial one only: numba's cache index would not tell
    them apart."""
    global _UMAP_CACHED
    use_numba_cache()
    import umap

    if not _UMAP_CACHED:
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher

        found: dict[int, dict[int, Dispatcher]] = {}  # Python function -> its dispatchers (a module
        for name, module in list(sys.modules.items()):  # re-exporting one shows the same dispatcher)
            if name == "umap" or name.startswith("umap."):
                for obj in list(vars(module).values()):
                    if isinstance(obj, Dispatcher) and isinstance(obj._cache, NullCache):
                        found.setdefault(id(obj.py_func), {})[id(obj)] = obj
        for twins in found.values():
            for dispatcher in twins.values():
                if len(twins) > 1 and dispatcher.targetoptions.get("parallel"):
                    continue
                try:
                    dispatcher.enable_caching()
                except RuntimeError:  # no place to cache it (numba says why): it compiles as before
                    pass
        _UMAP_CACHED = True
    return umap


_UMAP_CACHED = False


SMALL_TABLE = 4096  # below this many rows UMAP computes all pairwise distances instead of NN-descent


def _fit_umap(arr: np.ndarray, full: dict) -> np.ndarray:
    """[N, D] float32 -> [N, 2] with `full` parameters. A small table (UMAP's exact-neighbour case)
    gets its distance matrix from scikit-learn's vectorised metric, passed as 'precomputed': umap
    computes it by calling its numba metric once per pair from Python (1.4 M calls, ~4 s for the
    1,682 MovieLens items)."""
    import warnings

    from sklearn.metrics.pairwise import PAIRWISE_DISTANCE_FUNCTIONS, pairwise_distances

    umap = import_umap()
    metric = str(full["metric"])
    data = arr
    if len(arr) < SMALL_TABLE and metric in PAIRWISE_DISTANCE_FUNCTIONS:
        data, metric = pairwise_distances(arr, metric=metric).astype(np.float32), "precomputed"
    reducer = umap.UMAP(n_neighbors=int(full["n_neighbors"]), min_dist=float(full["min_dist"]), metric=metric,
                        random_state=int(full["seed"]), n_jobs=1)
    with warnings.catch_warnings():  # "using precomputed metric; inverse_transform will be unavailable"
        warnings.filterwarnings("ignore", message=".*precomputed metric.*")
        return reducer.fit_transform(data).astype(np.float32)


def fit(arr: np.ndarray, full: dict, sample: int = SAMPLE) -> np.ndarray:
    """[N, D] float32 -> [N, 2]: UMAP with `full` parameters on every item when N <= `sample`,
    else on a seeded sample of `sample` items, the rest placed by `place`."""
    if len(arr) <= sample:
        return _fit_umap(arr, full)
    chosen = np.zeros(len(arr), dtype=bool)
    chosen[np.random.default_rng(int(full["seed"])).choice(len(arr), sample, replace=False)] = True
    out = np.empty((len(arr), 2), dtype=np.float32)
    out[chosen] = _fit_umap(arr[chosen], full)
    out[~chosen] = place(arr[~chosen], arr[chosen], out[chosen], str(full["metric"]))
    return out


def place(rows: np.ndarray, fitted: np.ndarray, positions: np.ndarray, metric: str = "cosine",
          k: int = PLACE_NEIGHBOURS) -> np.ndarray:
    """[M, 2] positions of `rows` [M, D]: the mean of the positions [S, 2] of their `k` nearest
    `fitted` rows [S, D], weighted by closeness, as UMAP's own transform starts. Exact up to
    EXACT_PAIRS pairs (torch for cosine and euclidean, scikit-learn for other metrics), through
    pynndescent's approximate index beyond."""
    k = min(k, len(fitted))
    if len(rows) * len(fitted) > EXACT_PAIRS:
        return _place_approximately(rows, fitted, positions, metric, k)
    if metric not in ("cosine", "euclidean"):
        from sklearn.neighbors import NearestNeighbors

        distance, nearest = NearestNeighbors(n_neighbors=k, metric=metric).fit(fitted).kneighbors(rows)
        return _weighted(positions, nearest, 1.0 / (distance + 1e-6))
    import torch

    fitted_t, rows_t = torch.from_numpy(np.asarray(fitted, np.float32)), torch.from_numpy(np.asarray(rows, np.float32))
    if metric == "cosine":
        fitted_t = torch.nn.functional.normalize(fitted_t, dim=1)
        rows_t = torch.nn.functional.normalize(rows_t, dim=1)
    half_squared = (fitted_t * fitted_t).sum(1) / 2
    where = torch.from_numpy(np.asarray(positions, np.float32))
    out = torch.empty((len(rows_t), 2))
    with torch.no_grad():
        for start in range(0, len(rows_t), CHUNK):
            part = rows_t[start:start + CHUNK]
            score = part @ fitted_t.T  # cosine similarity, or -|a-b|^2/2 up to a per-row constant
            if metric == "euclidean":
                score -= half_squared
            best, nearest = score.topk(k, dim=1)  # torch's top-k: threaded, unlike numpy's argpartition
            if metric == "cosine":
                weight = best.clamp(min=0) + 1e-6
            else:
                weight = 1.0 / ((part * part).sum(1, keepdim=True) - 2 * best).clamp(min=0).sqrt().add(1e-6)
            out[start:start + CHUNK] = (where[nearest] * weight[..., None]).sum(1) / weight.sum(1, keepdim=True)
    return out.numpy()


def _place_approximately(rows: np.ndarray, fitted: np.ndarray, positions: np.ndarray, metric: str,
                         k: int) -> np.ndarray:
    """`place` through pynndescent's index of the sampled rows (what UMAP itself uses to find
    neighbours): 145,000 rows placed among 15,000 in a few seconds, where the exact top-k over
    every pair took 40 s on two busy cores."""
    from pynndescent import NNDescent

    use_numba_cache()
    index = NNDescent(np.asarray(fitted, np.float32), metric=metric, n_neighbors=max(k, 15), random_state=0,
                      n_jobs=1)
    nearest, distance = index.query(np.asarray(rows, np.float32), k=k)
    return _weighted(positions, nearest, 1.0 / (distance + 1e-6))


def _weighted(positions: np.ndarray, nearest: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return ((positions[nearest] * weight[..., None]).sum(1) / weight.sum(1, keepdims=True)).astype(np.float32)
