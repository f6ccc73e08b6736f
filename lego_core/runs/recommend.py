"""One user's recommendations, scored by the run's own model (its predictor, not a dot-product
stand-in), so DIN, DCN, DeepFM, DNN and MINER runs are exact at any catalogue size.

Scoring one user against every item is one predictor call over [1, N] candidates. The item and user
tables are the ones training saved (`training.tables`) while they are current for the run's best
checkpoint, else computed once from the model; the model is loaded once per run and best checkpoint
(on the dataset the caller already holds, so the app keeps one copy), each user's scores kept in
a small LRU.
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
from lego_core.training import tables

_MODELS: OrderedDict = OrderedDict()  # (run path, best.pt stamp, dataset) -> Scorer
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
    users: torch.Tensor | None = None  # the saved user table at test time (None: encoded per user)
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
        if self.users is not None:
            user = self.users[[row]]
        else:
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


def scorer(run, dataset: Any = None) -> Scorer:
    """The run's Scorer, loaded on first use (model from checkpoints/best.pt, on the CPU) on
    `dataset` (the run's dataset the caller holds; None loads it)."""
    from lego_core.runs.loading import load_model

    best = run.checkpoint_path("best")
    try:
        stamp = best.stat().st_mtime_ns
    except FileNotFoundError:
        raise RunError(f"run {run.id} has no best checkpoint ({best}) yet; recommendations appear once "
                       "its first epoch is validated") from None
    key = (str(run.path), stamp, None if dataset is None else id(dataset))  # a held dataset stays alive
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    model, dataset = load_model(run, dataset=dataset)
    saved = tables.current_tables(run, dataset)
    if saved is None:
        items, users = ev.item_table(model, model.recipe.training.eval_batch_size), None
    else:
        items, users = (torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)) for t in saved)
    _, ends = ev.test_user_states(dataset)
    found = Scorer(model, dataset, items, dataset.items["item_id"].astype(str).tolist(), ends,
                   {str(u): i for i, u in enumerate(dataset.users)}, users)
    _MODELS[key] = found
    while len(_MODELS) > MAX_MODELS:
        _MODELS.popitem(last=False)
    return found


def forget() -> None:
    """Drop every loaded model (the app's datasets were reloaded: scorers would keep the old ones)."""
    _MODELS.clear()


def recommend(run, user_id: Any, k: int = 10, exclude: Iterable | None = None,
              dataset: Any = None) -> pd.DataFrame:
    """Top-k items of `run` for `user_id`, scored by the model itself (on `dataset`: see `scorer`).
    `exclude` drops item ids (e.g. the user's history). Columns: item_id, score, rank (1 = best)."""
    found = scorer(run, dataset)
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
