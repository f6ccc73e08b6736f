"""Fastformer user encoder (Wu et al., 2021): additive-attention Transformer layers over the
clicked items (with learned positions), then additive attention pooling."""
from __future__ import annotations

import torch

from lego_core.bricks.base import BehaviorOperator, BuildContext
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import FastformerEncoder, TokenIndex, check_heads


@register(name="fastformer", kind="behavior",
          description="Fastformer layers over the clicked items, then additive attention pooling",
          paper="Wu, Wu, Qi, Huang, Xie, Fastformer: Additive Attention Can Be All You Need, arXiv 2021",
          params=[
              Param("layers", "int", 1, low=1, high=12, help="Fastformer layers"),
              Param("heads", "int", 4, low=1, high=64, help="attention heads; must divide the model width D"),
              Param("ff_dim", "int", 256, low=4, high=8192, help="feed-forward hidden size"),
              Param("dropout", "float", 0.1, low=0.0, high=0.9, help="dropout in the layers"),
              Param("attention_dim", "int", 200, low=4, high=1024, help="additive pooling hidden size"),
          ])
class FastformerUser(BehaviorOperator):
    """items [B, H, D], mask [B, H] -> [B, D]."""

    def __init__(self, ctx: BuildContext, layers: int = 1, heads: int = 4, ff_dim: int = 256,
                 dropout: float = 0.1, attention_dim: int = 200):
        super().__init__()
        check_heads(ctx.dim, heads, "fastformer")
        self.encoder = FastformerEncoder(ctx.dim, layers, heads, ff_dim, dropout, ctx.max_history, attention_dim)

    def forward(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        index = TokenIndex(mask)
        return self.encoder(index.pack(items), index)
