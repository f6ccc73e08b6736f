"""The popularity floor every run is judged by: items ranked by how many users clicked them in
training, with its metrics per split (test also warm / cold, as `evaluate.metrics_by_part`)."""
from __future__ import annotations

import numpy as np

from lego_core.data.arrays import sorted_unique
from lego_core.data.schema import Dataset
from lego_core.evaluation.evaluate import evaluate_scores, split_parts


def scores(dataset: Dataset) -> np.ndarray:
    """Popularity baseline, the floor every results table is compared against: per item, how many
    distinct users clicked it in training data (train clicks and pre-evaluation histories); cold
    items count 0."""
    n, imps = dataset.num_items, dataset.splits["train"]
    seq_users = np.repeat(np.arange(dataset.num_users), np.diff(dataset.seq_offsets))
    in_train = _train_sequence_mask(dataset)
    clicked = imps.labels == 1
    keys = np.concatenate([seq_users[in_train] * n + dataset.seq_items[in_train],
                           imps.users[imps.group[clicked]] * n + imps.items[clicked]])
    counts = np.bincount(sorted_unique(keys) % n, minlength=n).astype(np.float64)
    if dataset.cold is not None:  # training never sees cold items: neither does the floor
        counts[dataset.cold] = 0.0
    return counts


def _train_sequence_mask(dataset: Dataset) -> np.ndarray:
    """Sequence positions that precede each user's first valid/test impression (no leakage)."""
    limit = np.diff(dataset.seq_offsets).copy()
    for split in ("valid", "test"):
        imps = dataset.splits.get(split)
        if imps is not None and len(imps):
            np.minimum.at(limit, imps.users, imps.history_end)
    pos = np.arange(len(dataset.seq_items)) - np.repeat(dataset.seq_offsets[:-1], np.diff(dataset.seq_offsets))
    return pos < np.repeat(limit, np.diff(dataset.seq_offsets))


def floor(dataset: Dataset) -> dict:
    """{split: metrics} of the popularity baseline, with test_warm / test_cold."""
    item_scores = scores(dataset)
    out = {"valid": evaluate_scores(dataset, "valid", item_scores)}
    out.update(split_parts("test", evaluate_scores(dataset, "test", item_scores, parts=True)))
    return out
