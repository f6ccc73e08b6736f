"""What the Datasets page plots, counted once per loaded dataset. At MIND-large size a histogram of
raw values sends a million history lengths and 2.6 million impression sizes to the browser on every
rerun, and clicks per impression sum 81 million labels; 50 bins are a few hundred numbers, and
`lookups.once` keeps them while the dataset lives (pages/_common holds one per server process)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lego_core.data.schema import Dataset
from lego_core.explore.lookups import once

BINS = 50


def _edges(values: list[np.ndarray], bins: int) -> np.ndarray:
    """Integer bin edges [low, ..., high + 1] covering every value, at most `bins` bins."""
    present = [v for v in values if len(v)]
    if not present:
        return np.array([0, 1])
    low = min(int(v.min()) for v in present)
    high = max(int(v.max()) for v in present)
    width = max(1, -(-(high - low + 1) // bins))
    return np.arange(low, high + width + 1, width)


def _counted(values: np.ndarray, edges: np.ndarray, noun: str) -> pd.DataFrame:
    counts, _ = np.histogram(values, bins=edges)
    return pd.DataFrame({"from": edges[:-1], "to": edges[1:] - 1, noun: counts})


def history_length_counts(dataset: Dataset, bins: int = BINS) -> pd.DataFrame:
    """Users per history-length bin: columns from, to (inclusive) and users."""
    def count() -> pd.DataFrame:
        lengths = np.diff(dataset.seq_offsets)
        return _counted(lengths, _edges([lengths], bins), "users")
    return once(dataset, f"history_length_counts:{bins}", count)


def impression_size_counts(dataset: Dataset, bins: int = BINS) -> pd.DataFrame:
    """Impressions per size bin (candidates) and split, the same bins for every split: columns
    split, from, to (inclusive) and impressions."""
    def count() -> pd.DataFrame:
        splits = {s: imps.sizes for s, imps in dataset.splits.items() if len(imps)}
        edges = _edges(list(splits.values()), bins)
        frames = [_counted(sizes, edges, "impressions").assign(split=s) for s, sizes in splits.items()]
        columns = ["split", "from", "to", "impressions"]
        return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    return once(dataset, f"impression_size_counts:{bins}", count)


def impression_stats(dataset: Dataset) -> pd.DataFrame:
    """Per split: impressions, candidates per impression (min/mean/max) and clicks per impression."""
    def stats() -> pd.DataFrame:
        rows = []
        for split, imps in dataset.splits.items():
            if not len(imps):
                continue
            sizes = imps.sizes
            clicks = int(np.count_nonzero(imps.labels == 1))
            rows.append([split, len(imps), int(sizes.min()), float(sizes.mean()), int(sizes.max()), clicks / len(imps)])
        return pd.DataFrame(rows, columns=["split", "impressions", "min size", "mean size", "max size",
                                           "clicks per impression"]).round(2)
    return once(dataset, "impression_stats", stats)
