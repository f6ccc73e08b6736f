"""History cache (SpeedyFeed, Xiao et al., KDD 2022): history items come from an item table.

In a joint step most encoded items are history items (50 clicks per sample against 1 + K
candidates), and their gradients matter least. With the cache, history vectors are looked up in
a table of every item's vector, computed with the current weights without gradients (eval mode)
and refreshed every `every` steps and at each epoch start; only the batch's candidates go through
the content brick with gradients. The behaviour brick and the predictor still train every step.
The table is rebuilt, never checkpointed: after a resume it is recomputed from the loaded weights.
"""
from __future__ import annotations

import torch

from lego_core.evaluation import evaluate as ev
from lego_core.bricks.model import Legommender
from lego_core.bricks.base import LM_TOKENS
from lego_core.bricks.catalog import get as get_brick
from lego_core.bricks.recipe import Recipe


def enabled(recipe: Recipe) -> bool:
    """training.history_cache, or by default: on for language-model content bricks (where encoding
    dominates a step), off for word models (see docs/benchmarks.md for the measurements)."""
    if recipe.training.history_cache is not None:
        return recipe.training.history_cache
    return get_brick(recipe.content.name, "content").cls.input_kind == LM_TOKENS


def refresh_interval(recipe: Recipe, num_items: int) -> int:
    """training.history_refresh, or by default the steps whose candidates number about as many
    items as the catalogue: 5 on MovieLens-100k at batch 64 with 4 negatives, 500 on MIND-large.
    Measured on MovieLens-100k (docs/benchmarks.md): a table 100 steps old early in training costs
    0.008 valid AUC, one 5 steps old 0.003."""
    t = recipe.training
    if t.history_refresh is not None:
        return t.history_refresh
    return max(1, round(num_items / (t.batch_size * (1 + t.negatives))))


class HistoryCache:
    """A bounded-staleness table of item vectors for the history slots of training batches."""

    def __init__(self, every: int, batch_size: int = 512):
        self.every, self.batch_size = int(every), int(batch_size)
        self.table: torch.Tensor | None = None
        self.age = 0  # steps served since the last refresh
        self.refreshes = 0

    def invalidate(self) -> None:
        """Forget the table: the next `get` recomputes it (epoch start, resume)."""
        self.table = None

    def refresh(self, model: Legommender) -> torch.Tensor:
        """Recompute every item's vector with the current weights, in eval mode, without gradients."""
        was_training = model.training
        model.eval()
        try:
            self.table = ev.item_table(model, self.batch_size)
        finally:
            model.train(was_training)
        self.age, self.refreshes = 0, self.refreshes + 1
        return self.table

    def get(self, model: Legommender) -> torch.Tensor:
        """The table for the next step, refreshed first when absent or `every` steps old."""
        if self.table is None or self.age >= self.every:
            self.refresh(model)
        self.age += 1
        return self.table
