"""MINER's multi-interest matching (Li et al., Findings of ACL 2022): each of the K interest vectors
scores the candidate by dot product; the K scores are aggregated by max, mean or a candidate-aware
attention over the interests."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import USER_INTERESTS, BuildContext, Predictor
from lego_core.bricks.catalog import Param, register


@register(name="miner", kind="predictor",
          description="Dot product per interest vector, aggregated by max, mean or attention (MINER)",
          paper="Li, Zhu, Lu, Liu, Wang, MINER: Multi-Interest Matching Network for News Recommendation, "
                "Findings of ACL 2022",
          params=[Param("aggregate", "choice", "max", choices=("max", "mean", "attention"),
                        help="how the K per-interest scores become one")])
class MinerPredictor(Predictor):
    """user interests [B, K, D], candidates [B, C, D] -> [B, C]."""

    needs = USER_INTERESTS
    losses = ("softmax", "bce")

    def __init__(self, ctx: BuildContext, aggregate: str = "max"):
        super().__init__()
        self.aggregate = aggregate
        # candidate-aware attention: weight_k = softmax_k(c . W u_k / sqrt(D))
        self.key = nn.Linear(ctx.dim, ctx.dim, bias=False) if aggregate == "attention" else None
        self.scale = ctx.dim ** -0.5

    def forward(self, user: torch.Tensor, candidates: torch.Tensor, history: torch.Tensor | None = None,
                history_mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = torch.bmm(candidates, user.transpose(1, 2))  # [B, C, K]
        if self.aggregate == "max":
            return scores.amax(dim=-1)
        if self.aggregate == "mean":
            return scores.mean(dim=-1)
        weights = (torch.bmm(candidates, self.key(user).transpose(1, 2)) * self.scale).softmax(dim=-1)
        return (weights * scores).sum(dim=-1)
