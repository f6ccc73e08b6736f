"""Cold items: items that training never sees, the case content-based recommenders exist for.

Every dataset gets a `cold` mask: items that appear in no train impression and in no history a
train impression shows (MIND's news first seen in the dev folder, a movie only ever clicked last).
On leave-last-out datasets (MovieLens, tables) the `cold_items` option makes a seeded fraction of
items cold on purpose: train impressions whose clicked item is one of them are dropped, and the
trainer masks them out of histories and never samples them as negatives (`batches.py`), so they get
no gradient at all. Valid and test keep every impression; evaluation reports all impressions and,
separately, those whose clicked item is cold (`test_cold`) or warm (`test_warm`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from lego_core.data.schema import LEAVE_LAST_OUT, Dataset
from lego_core.core.errors import DataError

MAX_FRACTION = 0.9


def check_fraction(value, what: str) -> float:
    """`cold_items` as a float in [0, 0.9], or a DataError naming the option."""
    if isinstance(value, bool):
        value = None
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{what} option cold_items must be a fraction of items in [0, {MAX_FRACTION}] "
                        f"(e.g. 0.1), got {value!r}") from None
    if not 0.0 <= fraction <= MAX_FRACTION:
        raise DataError(f"{what} option cold_items must be in [0, {MAX_FRACTION}], got {value!r}")
    return fraction


def not_applicable(name: str) -> DataError:
    """The refusal of cold_items for a dataset whose protocol is not leave-last-out."""
    return DataError(f"dataset {name!r}: option cold_items applies to leave-last-out datasets only; the items "
                     "its evaluation impressions show first are cold already (see its cold/warm test metrics)")


def with_cold_items(dataset: Dataset, fraction: float = 0.0, seed: int = 0) -> Dataset:
    """The dataset with its `cold` mask set: the items training never sees, after making a seeded
    `fraction` of items cold (leave-last-out datasets only). A dataset read from the processed store
    brings its natural mask (`natural_cold`) as `cold`: with fraction 0 it is kept as it is."""
    fraction = check_fraction(fraction, dataset.name)
    n = dataset.num_items
    chosen = np.zeros(n, dtype=bool)
    splits = dict(dataset.splits)
    info = dict(dataset.info)
    if fraction > 0:
        if info.get("protocol") != LEAVE_LAST_OUT:
            raise not_applicable(dataset.name)
        rng = np.random.default_rng([int(info.get("seed", 0)), int(seed), 0xC01D])
        chosen[rng.choice(n, size=int(round(fraction * n)), replace=False)] = True
        train = splits["train"]
        hit = np.zeros(len(train), dtype=bool)
        np.logical_or.at(hit, train.group, chosen[train.items] & (train.labels == 1))
        splits["train"] = train.select(np.flatnonzero(~hit))
        info["cold_train_impressions_dropped"] = int(hit.sum())
    stored = fraction == 0 and dataset.cold is not None and "cold_items" not in info
    cold = dataset.cold if stored else chosen | natural_cold(dataset, splits["train"])
    info.update(cold_items=fraction, cold_count=int(cold.sum()))
    return dataclasses.replace(dataset, splits=splits, cold=cold, info=info)


def natural_cold(dataset: Dataset, train=None) -> np.ndarray:
    """[N] items that are no candidate of the train split (`train`, default the dataset's own) and
    in no history a train impression shows. The processed store keeps this mask beside the
    arrays (a cached dataset arrives with it as `cold`), so loads do not recompute it."""
    train = dataset.splits["train"] if train is None else train
    seen = np.zeros(dataset.num_items, dtype=bool)
    seen[train.items] = True
    if len(train):
        reach = np.zeros(dataset.num_users, dtype=np.int64)  # longest history a train impression shows
        np.maximum.at(reach, train.users, train.history_end)
        lengths = np.diff(dataset.seq_offsets)
        if bool(np.all((reach == 0) | (reach >= lengths))):  # whole histories (MIND): no positions needed
            seen[dataset.seq_items[np.repeat(reach > 0, lengths)]] = True
        else:
            pos = np.arange(len(dataset.seq_items)) - np.repeat(dataset.seq_offsets[:-1], lengths)
            seen[dataset.seq_items[pos < np.repeat(reach, lengths)]] = True
    return ~seen


def cold_impressions(dataset: Dataset, split: str) -> np.ndarray:
    """[M] True for the impressions of `split` whose clicked item is cold."""
    imps = dataset.splits[split]
    flags = np.zeros(len(imps), dtype=bool)
    if dataset.cold is not None and len(imps):
        np.logical_or.at(flags, imps.group, dataset.cold[imps.items] & (imps.labels == 1))
    return flags
