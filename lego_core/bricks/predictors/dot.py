"""Dot product between the user and each candidate: the matching function of NAML, NRMS, LSTUR and
matrix factorisation (Rendle et al., RecSys 2020, show it is hard to beat)."""
from __future__ import annotations

import torch

from lego_core.bricks.base import BuildContext, Predictor
from lego_core.bricks.catalog import register


@register(name="dot", kind="predictor",
          description="Dot product of the user vector and each candidate vector",
          paper="Rendle, Krichene, Zhang, Anderson, Neural Collaborative Filtering vs. Matrix Factorization "
                "Revisited, RecSys 2020")
class DotPredictor(Predictor):
    """user [B, D], candidates [B, C, D] -> [B, C]."""

    losses = ("softmax", "bce")

    def __init__(self, ctx: BuildContext):
        super().__init__()

    def forward(self, user: torch.Tensor, candidates: torch.Tensor, history: torch.Tensor | None = None,
                history_mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.bmm(candidates, user.unsqueeze(-1)).squeeze(-1)
