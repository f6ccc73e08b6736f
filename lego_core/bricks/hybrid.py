"""Hybrid item vectors: a learned item-ID embedding mixed into the content vector.

DropoutNet (Volkovs et al., "DropoutNet: Addressing Cold Start in Recommender Systems", NeurIPS
2017): drop the ID input at random during training, so the model learns to score from content
alone when an item has no usable ID vector. Cold items (`Dataset.cold`) never use theirs.
Modes: `add` (content + id) and `gate` (content + g * id, g = sigmoid(W [content; id]) per
dimension); with the ID dropped both give the content vector unchanged.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

MODES = ("off", "add", "gate")


class ItemIdMix(nn.Module):
    def __init__(self, num_items: int, dim: int, mode: str, dropout: float, cold: np.ndarray | None = None):
        super().__init__()
        if mode not in MODES[1:]:
            raise ValueError(f"item_id mode must be one of {MODES[1:]}, got {mode!r}")
        self.mode, self.dropout = mode, float(dropout)
        self.ids = nn.Embedding(num_items, dim)
        nn.init.normal_(self.ids.weight, std=0.02)
        self.gate = nn.Linear(2 * dim, dim) if mode == "gate" else None
        known = np.ones(num_items, dtype=bool) if cold is None else ~np.asarray(cold, dtype=bool)
        self.register_buffer("known", torch.as_tensor(known), persistent=False)

    def forward(self, content: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        keep = self.known[item_ids]
        if self.training and self.dropout > 0:
            keep = keep & (torch.rand(len(item_ids), device=item_ids.device) >= self.dropout)
        ids = self.ids(item_ids) * keep.unsqueeze(-1).to(content.dtype)
        if self.gate is None:
            return content + ids
        return content + torch.sigmoid(self.gate(torch.cat([content, ids], dim=-1))) * ids
