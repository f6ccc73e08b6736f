"""Legommender: one content x behaviour x predictor stack, trained end to end.

One content encoder serves candidates and history alike; within a batch every distinct item is
encoded once (torch.unique over history + candidates), which is where most training time goes.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn

from lego_core.data.schema import Dataset
from lego_core.bricks.catalog import get as get_brick
from lego_core.bricks.base import LM_TOKENS, WORD_TOKENS, BuildContext
from lego_core.bricks.hybrid import ItemIdMix
from lego_core.bricks.recipe import Recipe


class HistoryTable(Protocol):
    """Where a cached training step keeps item bodies (lego_core.training.history_cache)."""

    def store(self, ids: torch.Tensor, vectors: torch.Tensor, num_items: int) -> None: ...

    def lookup(self, model: "Legommender", ids: torch.Tensor) -> torch.Tensor: ...


class Legommender(nn.Module):
    """Composes the three bricks named by a recipe; holds the item token table as buffers."""

    def __init__(self, recipe: Recipe, dataset: Dataset, device: str | torch.device = "cpu"):
        super().__init__()
        params = recipe.validate_bricks()
        self.recipe = recipe
        self.num_items, self.num_users = dataset.num_items, dataset.num_users
        t = recipe.training
        content_spec = get_brick(recipe.content.name, "content")
        self.input_kind = content_spec.cls.input_kind
        ctx = BuildContext(dim=t.dim, num_items=dataset.num_items, num_users=dataset.num_users,
                           max_history=t.max_history, device=str(device), max_length=t.max_length,
                           amp=t.amp)
        fields = t.fields or dataset.text_fields
        if self.input_kind == WORD_TOKENS:
            from lego_core.data.tokenize import word_tokens

            table = word_tokens(dataset, fields, t.max_length, glove=t.glove)
            ctx.vocab_size, ctx.word_vectors = len(table.vocab), table.vectors
            self.register_buffer("tokens", torch.as_tensor(table.tokens, dtype=torch.long), persistent=False)
            self.register_buffer("token_mask", torch.as_tensor(table.mask, dtype=torch.bool), persistent=False)
        elif self.input_kind == LM_TOKENS:
            from lego_core.data.text import item_texts

            ctx.item_texts = item_texts(dataset, fields or None, t.template)
        self.content = content_spec.cls(ctx, **params["content"])
        self.behavior = get_brick(recipe.behavior.name, "behavior").cls(ctx, **params["behavior"])
        predictor_spec = get_brick(recipe.predictor.name, "predictor")
        self.predictor = predictor_spec.cls(ctx, **params["predictor"])
        self.needs_history = predictor_spec.cls.needs_history
        self.item_ids = (ItemIdMix(dataset.num_items, t.dim, t.item_id, t.item_id_dropout, dataset.cold)
                         if t.item_id != "off" else None)

    # ---- encoders -----------------------------------------------------------------------
    def encode_items(self, item_ids: torch.Tensor) -> torch.Tensor:
        """[N] item indices -> [N, D]; word tokens are trimmed to the longest text in the batch. With
        training.item_id, a learned ID vector is mixed in (never for cold items)."""
        return self.item_heads(self.item_bodies(item_ids), item_ids)

    def item_bodies(self, item_ids: torch.Tensor) -> torch.Tensor:
        """The content brick's costly part (`ContentOperator.body`): what a history cache keeps."""
        if self.input_kind != WORD_TOKENS:
            return self.content.body(None, None, item_ids)
        mask = self.token_mask[item_ids]
        length = max(int(mask.sum(dim=1).max()), 1) if len(item_ids) else 1
        return self.content.body(self.tokens[item_ids, :length], mask[:, :length], item_ids)

    def item_heads(self, bodies: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """Item vectors from `item_bodies`: the content head, then the ID vector when mixed in."""
        vectors = self.content.head(bodies)
        return vectors if self.item_ids is None else self.item_ids(vectors, item_ids)

    def encode_users(self, history_vectors: torch.Tensor, history_mask: torch.Tensor,
                     users: torch.Tensor) -> torch.Tensor:
        return self.behavior(history_vectors, history_mask, users)

    def score(self, user: torch.Tensor, candidates: torch.Tensor, history_vectors: torch.Tensor,
              history_mask: torch.Tensor) -> torch.Tensor:
        if self.needs_history:
            return self.predictor(user, candidates, history_vectors, history_mask)
        return self.predictor(user, candidates)

    def forward(self, users: torch.Tensor, history: torch.Tensor, history_mask: torch.Tensor,
                candidates: torch.Tensor, history_cache: HistoryTable | None = None) -> torch.Tensor:
        """users [B], history [B, H] item ids, history_mask [B, H], candidates [B, C] -> logits [B, C].
        With `history_cache` (lego_core.training.history_cache) the candidates' bodies are encoded and go
        into the cache; other history rows' bodies are read from it (rows it re-encodes with gradients),
        and the heads run on all of them."""
        b, h = history.shape
        unique, inverse = torch.unique(torch.cat([history.reshape(-1), candidates.reshape(-1)]), return_inverse=True)
        if history_cache is None:
            vectors = self.encode_items(unique)
        else:  # the candidates' bodies are encoded and stored; the other rows are read from the cache
            is_candidate = torch.zeros(len(unique), dtype=torch.bool, device=unique.device)
            is_candidate[inverse[b * h:]] = True
            fresh = self.item_bodies(unique[is_candidate])
            history_cache.store(unique[is_candidate], fresh, self.num_items)
            read = history_cache.lookup(self, unique[~is_candidate]).to(fresh.dtype)
            bodies = torch.empty((len(unique), fresh.shape[1]), dtype=fresh.dtype, device=fresh.device)
            bodies = bodies.index_put((torch.nonzero(is_candidate).reshape(-1),), fresh)
            bodies = bodies.index_put((torch.nonzero(~is_candidate).reshape(-1),), read)
            vectors = self.item_heads(bodies, unique)  # every row's head runs with gradients
        history_vectors = vectors[inverse[: b * h]].view(b, h, -1)
        candidate_vectors = vectors[inverse[b * h:]].view(b, candidates.shape[1], -1)
        user = self.encode_users(history_vectors, history_mask, users)
        return self.score(user, candidate_vectors, history_vectors, history_mask)

    # ---- bookkeeping --------------------------------------------------------------------
    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(pretrained, other) trainable parameters: they get lr_pretrained and lr."""
        pretrained = [p for p in self.content.pretrained_parameters() if p.requires_grad]
        ids = {id(p) for p in pretrained}
        other = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return pretrained, other

    def parameter_count(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def memory_estimate_mb(self, batch_size: int | None = None) -> float:
        """Rough training memory: weights + Adam state (x4 for trainable) + one batch of activations."""
        t = self.recipe.training
        batch = batch_size or t.batch_size
        weights = sum(p.numel() * p.element_size() for p in self.parameters())
        trainable = sum(p.numel() * p.element_size() for p in self.parameters() if p.requires_grad)
        length = self.tokens.shape[1] if self.input_kind == WORD_TOKENS else t.max_length
        items = batch * (t.max_history + t.negatives + 1)
        activations = items * length * t.dim * 4 * 8
        return (weights + 3 * trainable + activations) / 2 ** 20


def build(recipe: Recipe, dataset: Dataset, device: str | torch.device = "cpu") -> Legommender:
    """Validate the recipe against the catalog and build the model for this dataset."""
    return Legommender(recipe, dataset, device)


def to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)
