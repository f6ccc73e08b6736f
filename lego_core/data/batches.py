"""Training samples and batches, prepared once per dataset and gathered by index.

A sample is one clicked item of a training impression plus K negatives: drawn from the same
impression's unclicked candidates where it has some (MIND), else from items the user never
touched. Negatives depend only on (seed, epoch, step), so a resumed run sees the same batches.
Cold items (`Dataset.cold`) never reach a batch: they are masked out of histories (as padding)
and never drawn as negatives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lego_core.data.arrays import sorted_unique
from lego_core.data.schema import Dataset, Impressions, flat_ranges


@dataclass
class Batch:
    users: np.ndarray  # [B]
    history: np.ndarray  # [B, H] item ids
    history_mask: np.ndarray  # [B, H] bool
    candidates: np.ndarray  # [B, 1+K]; column 0 is the clicked item


class TrainingSamples:
    """All (impression, clicked item) pairs of the train split and what negative sampling needs."""

    def __init__(self, dataset: Dataset, negatives: int, max_history: int, split: str = "train"):
        imps: Impressions = dataset.splits[split]
        self.dataset, self.negatives, self.max_history = dataset, negatives, max_history
        positive = imps.labels == 1
        group = imps.group
        self.impression = group[positive]  # [S] impression position of each sample
        self.positive = imps.items[positive]  # [S]
        if len(self.positive) == 0:
            from lego_core.core.errors import DataError

            raise DataError(f"dataset '{dataset.name}' has no clicked items in its '{split}' split; nothing to train on")
        self.users = imps.users
        self.history_end = imps.history_end
        # unclicked candidates per impression, CSR
        neg_rows = ~positive
        counts = np.bincount(group[neg_rows], minlength=len(imps))
        self.neg_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.neg_items = imps.items[neg_rows]
        self._clicked_users = imps.users[self.impression]
        self._seen_keys: np.ndarray | None = None
        self.cold = dataset.cold if dataset.cold is not None and dataset.cold.any() else None
        self.warm_items = np.flatnonzero(~self.cold) if self.cold is not None else None

    @property
    def seen_keys(self) -> np.ndarray:
        """Every (user, item) the user touched as sorted keys (user * N + item), to reject sampled
        negatives. Built on first use: only impressions without unclicked candidates need it, and
        MIND has none, where sorting its 33 million keys was most of a MIND-large set-up."""
        if self._seen_keys is None:
            dataset = self.dataset
            seq_users = np.repeat(np.arange(dataset.num_users), np.diff(dataset.seq_offsets))
            keys = seq_users.astype(np.int64) * dataset.num_items + dataset.seq_items
            clicked = self._clicked_users.astype(np.int64) * dataset.num_items + self.positive
            self._seen_keys = sorted_unique(np.concatenate([keys, clicked]))
        return self._seen_keys

    def __len__(self) -> int:
        return len(self.positive)

    def epoch_order(self, seed: int, epoch: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """Seeded permutation of sample indices; with several processes each takes its share
        (padded by wrapping so every rank runs the same number of steps)."""
        order = np.random.default_rng([seed, epoch]).permutation(len(self))
        if world > 1:
            per_rank = -(-len(order) // world)
            order = np.resize(order, per_rank * world)[rank::world]
        return order

    def batch(self, samples: np.ndarray, seed: int, epoch: int, step: int) -> Batch:
        rng = np.random.default_rng([seed, epoch, step, 7])
        imp = self.impression[samples]
        users = self.users[imp]
        history, mask = self.dataset.gather_histories(users, self.history_end[imp], self.max_history)
        if self.cold is not None:  # a cold item is padding here: training never sees it
            hidden = mask & self.cold[history]
            mask, history = mask & ~hidden, np.where(hidden, 0, history)
        negs = self._negatives(imp, users, rng)
        candidates = np.concatenate([self.positive[samples, None], negs], axis=1)
        return Batch(users, history, mask, candidates)

    def _negatives(self, imp: np.ndarray, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k, n_items = self.negatives, self.dataset.num_items
        out = np.empty((len(imp), k), dtype=np.int64)
        counts = self.neg_offsets[imp + 1] - self.neg_offsets[imp]
        has = counts > 0
        if has.any():  # from the impression's own unclicked candidates (with replacement)
            pick = (rng.random((int(has.sum()), k)) * counts[has, None]).astype(np.int64)
            out[has] = self.neg_items[self.neg_offsets[imp[has], None] + pick]
        rows = np.flatnonzero(~has)
        if len(rows):  # from items the user never touched (rejection, a few vectorized rounds)
            draw = rng.integers(0, n_items, size=(len(rows), k))
            for _ in range(10):
                keys = users[rows, None] * n_items + draw
                pos = np.searchsorted(self.seen_keys, keys).clip(max=len(self.seen_keys) - 1)
                bad = self.seen_keys[pos] == keys
                if self.cold is not None:
                    bad |= self.cold[draw]
                if not bad.any():
                    break
                draw[bad] = rng.integers(0, n_items, size=int(bad.sum()))
            if self.cold is not None:  # rare leftovers: never a cold item, even if the user saw it
                left = self.cold[draw]
                draw[left] = self.warm_items[rng.integers(0, len(self.warm_items), size=int(left.sum()))]
            out[rows] = draw
        return out


def impression_batches(imps: Impressions, batch_size: int) -> list[np.ndarray]:
    """Impression positions in batches of similar size (sorted by candidate count), so padding
    to the largest impression in a batch wastes little."""
    order = np.argsort(imps.sizes, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def padded_candidates(imps: Impressions, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items [B, C], valid [B, C] bool, flat positions of valid cells in imps.items order)."""
    sizes = imps.sizes[rows]
    width = int(sizes.max()) if len(rows) else 0
    valid = np.arange(width)[None, :] < sizes[:, None]
    flat = flat_ranges(imps.offsets[rows], sizes)
    items = np.zeros((len(rows), width), dtype=np.int64)
    items[valid] = imps.items[flat]
    return items, valid, flat
