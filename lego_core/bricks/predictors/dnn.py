"""A deep network on the (user, candidate) pair, as in the YouTube ranking model (Covington et al.,
RecSys 2016): an MLP over [user; item; user * item]."""
from __future__ import annotations

import torch

from lego_core.bricks.base import BuildContext, Predictor
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import mlp, parse_sizes


@register(name="dnn", kind="predictor",
          description="MLP over [user; item; user*item]",
          paper="Covington, Adams, Sargin, Deep Neural Networks for YouTube Recommendations, RecSys 2016",
          params=[
              Param("hidden", "str", "128,64", help="hidden layer sizes, comma-separated"),
              Param("dropout", "float", 0.1, low=0.0, high=0.9, help="dropout after each hidden layer"),
          ])
class DNNPredictor(Predictor):
    """user [B, D], candidates [B, C, D] -> MLP([u; c; u*c]) -> [B, C]."""

    losses = ("bce", "softmax")

    def __init__(self, ctx: BuildContext, hidden: str = "128,64", dropout: float = 0.1):
        super().__init__()
        self.net = mlp(3 * ctx.dim, parse_sizes(hidden, "dnn"), dropout)

    def forward(self, user: torch.Tensor, candidates: torch.Tensor, history: torch.Tensor | None = None,
                history_mask: torch.Tensor | None = None) -> torch.Tensor:
        user = user.unsqueeze(1).expand_as(candidates)
        return self.net(torch.cat([user, candidates, user * candidates], dim=-1)).squeeze(-1)
