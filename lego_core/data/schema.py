"""The one in-memory dataset schema every reader produces and everything downstream reads.

Items and users are addressed by dense integer indices (0..N-1, 0..U-1); the original ids stay in
`items.item_id` and `users`. Variable-length lists (user sequences, impression candidates) are
stored CSR-style (offsets + flat values) so batching is a vectorized gather, never a Python loop.

A user's clicks form one chronological sequence (oldest first). Each impression records how many
of its user's sequence items precede it (`history_end`): its history is `sequence[:history_end]`.
This gives leave-last-out datasets leak-free training histories (a training positive never sees
itself in its own history) and MIND its fixed per-user history, with one representation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SPLITS = ("train", "valid", "test")
# The two split protocols (`Dataset.info["protocol"]`, a source's and a format's declaration):
# per-user last clicks held out with sampled negatives, or logged impressions kept as they were shown.
LEAVE_LAST_OUT, IMPRESSIONS = "leave-last-out", "impressions"
PROTOCOLS = (LEAVE_LAST_OUT, IMPRESSIONS)


@dataclass
class Impressions:
    """Impressions of one split, CSR-style: candidates of impression m are
    `items[offsets[m]:offsets[m+1]]` with 0/1 `labels` alongside."""

    ids: np.ndarray  # [M] impression ids (int64, unique within the dataset)
    users: np.ndarray  # [M] user index (int64)
    times: np.ndarray  # [M] unix seconds (int64; 0 when unknown)
    history_end: np.ndarray  # [M] number of the user's sequence items before this impression
    offsets: np.ndarray  # [M+1] int64
    items: np.ndarray  # [T] item index (int64)
    labels: np.ndarray  # [T] int8 (1 = clicked)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def group(self) -> np.ndarray:
        """[T] the impression position (0..M-1) of each candidate row."""
        return np.repeat(np.arange(len(self.ids)), self.sizes)

    def to_frame(self, dataset: "Dataset | None" = None) -> pd.DataFrame:
        """One row per impression with candidate/label lists (for previews, not hot paths)."""
        cands = np.split(self.items, self.offsets[1:-1]) if len(self.ids) else []
        labels = np.split(self.labels, self.offsets[1:-1]) if len(self.ids) else []
        frame = pd.DataFrame({"impression_id": self.ids, "user": self.users, "time": self.times,
                              "history_length": self.history_end,
                              "candidates": [c.tolist() for c in cands],
                              "labels": [lab.tolist() for lab in labels]})
        if dataset is not None:
            frame["user"] = dataset.users[self.users]
            ids = dataset.items["item_id"].to_numpy()
            frame["candidates"] = [ids[np.asarray(c, dtype=np.int64)].tolist() for c in frame["candidates"]]
        return frame

    def select(self, rows: np.ndarray) -> "Impressions":
        """A new Impressions holding the impressions at positions `rows` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        sizes = self.sizes[rows]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        flat = flat_ranges(self.offsets[rows], sizes)
        return Impressions(self.ids[rows], self.users[rows], self.times[rows], self.history_end[rows],
                           offsets, self.items[flat], self.labels[flat])


def flat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s+l) for each (s, l), vectorized."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    group_starts = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return group_starts + np.arange(total)


@dataclass
class Dataset:
    """A content-based recommendation dataset (see module docstring)."""

    name: str
    items: pd.DataFrame  # `item_id` (str) + text/categorical fields; row i is item index i
    users: np.ndarray  # [U] original user ids (str)
    seq_offsets: np.ndarray  # [U+1] CSR offsets into seq_items
    seq_items: np.ndarray  # [S] item indices, each user's clicks oldest first
    splits: dict[str, Impressions]
    text_fields: list[str] = field(default_factory=list)  # fields holding free text
    category_field: str | None = None  # field used to colour maps and count categories
    info: dict = field(default_factory=dict)  # provenance, options, drop counts
    cold: np.ndarray | None = None  # [N] bool: items training never sees (lego_core.data.cold)

    @property
    def num_items(self) -> int:
        return len(self.items)

    @property
    def num_users(self) -> int:
        return len(self.users)

    def history(self, user: int, end: int | None = None) -> np.ndarray:
        """Item indices the user clicked before `end` sequence positions (all when None)."""
        start, stop = self.seq_offsets[user], self.seq_offsets[user + 1]
        if end is not None:
            stop = start + min(int(end), stop - start)
        return self.seq_items[start:stop]

    def gather_histories(self, users: np.ndarray, ends: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Vectorized: the last `max_len` history items of each (user, end), left-aligned, oldest
        first, with a boolean mask. Returns (items [B, max_len] int64, mask [B, max_len] bool)."""
        users = np.asarray(users, dtype=np.int64)
        lengths = np.minimum(np.asarray(ends, dtype=np.int64), self.seq_offsets[users + 1] - self.seq_offsets[users])
        taken = np.minimum(lengths, max_len)
        starts = self.seq_offsets[users] + lengths - taken
        pos = np.arange(max_len)[None, :]
        mask = pos < taken[:, None]
        idx = np.where(mask, starts[:, None] + pos, 0)
        items = np.where(mask, self.seq_items[idx] if len(self.seq_items) else 0, 0)
        return items.astype(np.int64), mask

    def summary(self) -> dict:
        """Counts shown by `python -m lego_core datasets` and the app."""
        out = {"name": self.name, "items": self.num_items, "users": self.num_users,
               "clicks": int(len(self.seq_items))}
        for split, imps in self.splits.items():
            out[f"{split}_impressions"] = len(imps)
        return out
