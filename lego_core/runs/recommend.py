"""One user's recommendations, scored by the run's own model (its predictor, not a dot-product
stand-in), so DIN, DCN, DeepFM, DNN and MINER runs are exact at any catalogue size.

Scoring one user against every item is one predictor call over [1, N] candidates once the item
table exists; the model and its item table are loaded once per run (and reloaded when its best
checkpoint changes), each user's scores are kept in a small LRU.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from lego_core.evaluation import evaluate as ev
from lego_core.core.errors import RunError
from lego_core.bricks.model import to_tensor

_MODELS: OrderedDict = OrderedDict()  # (run path, best.pt stamp) -> Scorer
MAX_MODELS = 2
MAX_USERS = 256


@dataclass
class Scorer:
    """A run's model, dataset and item table, with each scored user's item scores."""

    model: Any
    dataset: Any
    items: torch.Tensor  # [N, D] item table from the model
    item_ids: list[str]
    test_ends: np.ndarray  # each user's history length at test time (ev.test_user_states)
    user_rows: dict[str, int]
    scored: OrderedDict = field(default_factory=OrderedDict)

    def row(self, user_id: Any) -> int:
        row = self.user_rows.get(str(user_id))
        if row is None:
            raise RunError(f"user {user_id!r} is not in dataset {self.dataset.name} "
                           f"({len(self.user_rows):,} users)")
        return row

    @torch.no_grad()
    def scores(self, user_id: Any) -> np.ndarray:
        """[N] the model's score of every item for this user (history up to their test time)."""
        row = self.row(user_id)
        if row in self.scored:
            self.scored.move_to_end(row)
            return self.scored[row]
        users, ends = np.array([row]), self.test_ends[[row]]
        user = ev.user_table(self.model, self.dataset, users, ends, self.items, batch_size=1)
        hist, mask = self.dataset.gather_histories(users, ends, self.model.recipe.training.max_history)
        device = self.items.device
        hist_t, mask_t = to_tensor(hist, device), to_tensor(mask, device)
        out = self.model.score(user, self.items.unsqueeze(0), self.items[hist_t], mask_t).float()
        values = out[0].cpu().numpy().astype(np.float64)
        self.scored[row] = values
        while len(self.scored) > MAX_USERS:
            self.scored.popitem(last=False)
        return values


def scorer(run) -> Scorer:
    """The run's Scorer, loaded on first use (model from checkpoints/best.pt, on the CPU)."""
    from lego_core.runs.loading import load_model

    best = run.checkpoint_path("best")
    try:
        stamp = best.stat().st_mtime_ns
    except FileNotFoundError:
        raise RunError(f"run {run.id} has no best checkpoint ({best}) yet; recommendations appear once "
                       "its first epoch is validated") from None
    key = (str(run.path), stamp)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    model, dataset = load_model(run)
    items = ev.item_table(model, model.recipe.training.eval_batch_size)
    _, ends = ev.test_user_states(dataset)
    found = Scorer(model, dataset, items, dataset.items["item_id"].astype(str).tolist(), ends,
                   {str(u): i for i, u in enumerate(dataset.users)})
    _MODELS[key] = found
    while len(_MODELS) > MAX_MODELS:
        _MODELS.popitem(last=False)
    return found


def recommend(run, user_id: Any, k: int = 10, exclude: Iterable | None = None) -> pd.DataFrame:
    """Top-k items of `run` for `user_id`, scored by the model itself. `exclude` drops item ids
    (e.g. the user's history). Columns: item_id, score, rank (1 = best)."""
    found = scorer(run)
    scores = found.scores(user_id)
    keep = np.ones(len(scores), dtype=bool)
    if exclude is not None:
        position = {item: i for i, item in enumerate(found.item_ids)}
        drop = [position[str(item)] for item in exclude if str(item) in position]
        keep[drop] = False
    candidates = np.flatnonzero(keep)
    order = candidates[np.argsort(-scores[candidates], kind="stable")][: max(int(k), 0)]
    return pd.DataFrame({"item_id": [found.item_ids[i] for i in order], "score": scores[order],
                         "rank": np.arange(1, len(order) + 1)})


def from_tables(run, user_id: Any, k: int = 10, exclude: Iterable | None = None) -> pd.DataFrame:
    """Top-k items by the dot product of the run's saved item and user tables (max over interests
    for [U, K, D] users): what the embedding space says, exact only for dot-product predictors.
    The Users page uses `recommend`; this serves comparisons of embedding spaces."""
    item_ids, items = run.item_embeddings()
    user_ids, users = run.user_embeddings()
    row = _find(user_ids, user_id)
    if row is None:
        raise RunError(f"user {user_id!r} is not in run {run.id}'s user table ({len(user_ids)} users)")
    user = users[row]
    scores = items @ user.T if user.ndim == 2 else items @ user  # [N, K] or [N]
    if scores.ndim == 2:
        scores = scores.max(axis=1)
    scores = scores.astype(np.float64)
    keep = np.ones(len(scores), dtype=bool)
    if exclude is not None:
        lookup = _index(item_ids)
        for item in exclude:
            pos = _find(item_ids, item, lookup)
            if pos is not None:
                keep[pos] = False
    candidates = np.flatnonzero(keep)
    order = candidates[np.argsort(-scores[candidates], kind="stable")][: max(int(k), 0)]
    ids_array = np.asarray(item_ids, dtype=object)
    return pd.DataFrame({"item_id": ids_array[order].tolist(), "score": scores[order],
                         "rank": np.arange(1, len(order) + 1)})


def _index(ids: list) -> dict:
    lookup: dict = {}
    for pos, value in enumerate(ids):
        lookup.setdefault(value, pos)
        lookup.setdefault(str(value), pos)
    return lookup


def _find(ids: list, value: Any, lookup: dict | None = None) -> int | None:
    """Position of `value` in `ids`, matching ints and their string forms ('7' finds 7)."""
    lookup = lookup if lookup is not None else _index(ids)
    if isinstance(value, np.generic):
        value = value.item()
    try:
        if value in lookup:
            return lookup[value]
    except TypeError:
        return None
    return lookup.get(str(value))
