"""Deep & Cross Network (Wang et al., ADKDD 2017): explicit bounded-degree feature crossings of
[user; item] beside a plain MLP, combined by a final linear layer."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import BuildContext, Predictor
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import mlp, parse_sizes


@register(name="dcn", kind="predictor",
          description="Cross layers x_{l+1} = x0 (w_l . x_l) + b_l + x_l beside an MLP on [user; item]",
          paper="Wang, Fu, Fu, Wang, Deep & Cross Network for Ad Click Predictions, ADKDD 2017",
          params=[
              Param("cross_layers", "int", 2, low=1, high=8, help="number of cross layers"),
              Param("hidden", "str", "128,64", help="deep part hidden sizes, comma-separated"),
              Param("dropout", "float", 0.1, low=0.0, high=0.9, help="dropout in the deep part"),
          ])
class DCNPredictor(Predictor):
    """user [B, D], candidates [B, C, D] -> [B, C]."""

    losses = ("bce", "softmax")

    def __init__(self, ctx: BuildContext, cross_layers: int = 2, hidden: str = "128,64", dropout: float = 0.1):
        super().__init__()
        width = 2 * ctx.dim
        sizes = parse_sizes(hidden, "dcn")
        self.cross_w = nn.Parameter(torch.randn(cross_layers, width) * width ** -0.5)
        self.cross_b = nn.Parameter(torch.zeros(cross_layers, width))
        self.deep = mlp(width, sizes, dropout, out_dim=None)
        self.out = nn.Linear(width + sizes[-1], 1)

    def forward(self, user: torch.Tensor, candidates: torch.Tensor, history: torch.Tensor | None = None,
                history_mask: torch.Tensor | None = None) -> torch.Tensor:
        x0 = torch.cat([user.unsqueeze(1).expand_as(candidates), candidates], dim=-1)  # [B, C, 2D]
        x = x0
        for w, b in zip(self.cross_w, self.cross_b):
            x = x0 * (x @ w).unsqueeze(-1) + b + x
        return self.out(torch.cat([x, self.deep(x0)], dim=-1)).squeeze(-1)
