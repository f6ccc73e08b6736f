"""DeepFM (Guo et al., IJCAI 2017): a factorisation machine over the fields (user, item) — first-
order weights plus pairwise inner products — summed with a deep MLP on the same fields."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import BuildContext, Predictor
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import mlp, parse_sizes


@register(name="deepfm", kind="predictor",
          description="Factorisation machine over the (user, item) fields plus an MLP",
          paper="Guo, Tang, Ye, Li, He, DeepFM: A Factorization-Machine based Neural Network for CTR "
                "Prediction, IJCAI 2017",
          params=[
              Param("hidden", "str", "128,64", help="deep part hidden sizes, comma-separated"),
              Param("dropout", "float", 0.1, low=0.0, high=0.9, help="dropout in the deep part"),
          ])
class DeepFMPredictor(Predictor):
    """user [B, D], candidates [B, C, D] -> FM(first + second order) + MLP -> [B, C]."""

    losses = ("bce", "softmax")

    def __init__(self, ctx: BuildContext, hidden: str = "128,64", dropout: float = 0.1):
        super().__init__()
        self.first_order = nn.Linear(2 * ctx.dim, 1)  # includes the global bias
        self.deep = mlp(2 * ctx.dim, parse_sizes(hidden, "deepfm"), dropout)

    def forward(self, user: torch.Tensor, candidates: torch.Tensor, history: torch.Tensor | None = None,
                history_mask: torch.Tensor | None = None) -> torch.Tensor:
        fields = torch.stack([user.unsqueeze(1).expand_as(candidates), candidates], dim=2)  # [B, C, F=2, D]
        # FM identity: sum_{i<j} <v_i, v_j> = 0.5 * sum_d ((sum_i v_id)^2 - sum_i v_id^2)
        second = 0.5 * (fields.sum(dim=2).pow(2) - fields.pow(2).sum(dim=2)).sum(dim=-1)
        flat = fields.flatten(2)
        return (self.first_order(flat) + self.deep(flat)).squeeze(-1) + second
