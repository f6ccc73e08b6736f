"""History cache with expiry (SpeedyFeed, Xiao et al., KDD 2022): history items come from a table.

In a joint step most encoded items are history items (50 clicks per sample against 1 + K
candidates), though their gradients carry much of the signal early in training. With the cache, only
the batch's candidates go through the content brick's costly `body` (for the LM bricks: the language
model and pooling) with gradients; their bodies (detached) go back into a table of every item's body
with the step it was encoded at. A history slot reads its row from that table; a row older than
`training.history_max_age` steps (or never encoded) is re-encoded first, by the same code path in the
same mode and precision as the candidates, and with gradients like them. The brick's `head` (the LM
bricks' projection, then the item-ID vector of a hybrid) runs on every row with gradients: it is the
part that moves fastest early in training, so a table of final vectors went stale within steps, and a
history side without any gradient trained to 0.015 lower valid AUC after 60 steps even with every
row re-encoded each step (docs/results.md, "History cache"). No periodic refresh of the whole
catalogue: a step re-encodes only the stale rows it reads; max age 0 is the exact path.

The table is never checkpointed: it is emptied at each epoch start, so a run resumed from an
epoch's checkpoint equals an uninterrupted one.
"""
from __future__ import annotations

import torch

from lego_core.bricks.recipe import Recipe

NEVER = -(2 ** 62)  # the step of a row never encoded: older than any age


def enabled(recipe: Recipe) -> bool:
    """training.history_cache; off unless asked for (docs/results.md, "History cache": on held-out
    data the cached path trained to a lower GAUC than the exact one, so it is an opt-in trade)."""
    return bool(recipe.training.history_cache)


class HistoryCache:
    """A table of item bodies, each with the step it was encoded at; rows expire by age."""

    def __init__(self, max_age: int):
        self.max_age = int(max_age)
        self.table: torch.Tensor | None = None
        self.stamps: torch.Tensor | None = None
        self.step = 0
        self.reencoded = 0  # rows the last step re-encoded for its history
        self.reencoded_total = 0
        self.read_total = 0  # distinct history rows read, summed over steps

    def invalidate(self) -> None:
        """Every row expires: the next reads re-encode what they need (epoch start, resume)."""
        if self.stamps is not None:
            self.stamps.fill_(NEVER)

    def begin_step(self) -> None:
        self.step += 1
        self.reencoded = 0

    def _ensure(self, vectors: torch.Tensor, num_items: int) -> None:
        if self.table is None or self.table.shape[1:] != vectors.shape[1:]:
            self.table = torch.zeros((num_items, *vectors.shape[1:]), dtype=torch.float32, device=vectors.device)
            self.stamps = torch.full((num_items,), NEVER, dtype=torch.long, device=vectors.device)

    def store(self, ids: torch.Tensor, vectors: torch.Tensor, num_items: int) -> None:
        """Write freshly encoded bodies (detached) with the current step."""
        self._ensure(vectors, num_items)
        self.table[ids] = vectors.detach().float()
        self.stamps[ids] = self.step

    def lookup(self, model, ids: torch.Tensor) -> torch.Tensor:
        """Bodies of distinct item `ids` (`model.item_bodies`). Rows older than max_age steps (or never
        encoded) are re-encoded now, in one call as the exact path encodes its items, and carry
        gradients like the candidates; fresh rows come from the table without. With max_age 0
        every history row is re-encoded, which is the exact path."""
        if self.stamps is not None:
            where = torch.nonzero(self.stamps[ids] < self.step - self.max_age).reshape(-1)
        else:
            where = torch.arange(len(ids), device=ids.device)
        stale = ids[where]
        self.reencoded += len(stale)
        self.reencoded_total += len(stale)
        self.read_total += len(ids)
        if not len(stale):
            return self.table[ids]
        encoded = model.item_bodies(stale)
        self.store(stale, encoded, model.num_items)
        return self.table[ids].to(encoded.dtype).index_put((where,), encoded)

    def stats(self) -> dict:
        """{"steps", "reencoded_per_step", "fresh_share"}: how much of the history the table served."""
        steps = max(self.step, 1)
        return {"steps": self.step, "reencoded_per_step": self.reencoded_total / steps,
                "fresh_share": 1 - self.reencoded_total / self.read_total if self.read_total else 0.0}
