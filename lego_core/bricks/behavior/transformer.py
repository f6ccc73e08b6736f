"""Transformer user encoder: bidirectional self-attention layers over the click sequence with
learned positions, as in BERT4Rec (Sun et al., CIKM 2019), pooled into one user vector."""
from __future__ import annotations

import torch

from lego_core.bricks.base import BehaviorOperator, BuildContext
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import TransformerPooler, check_heads


@register(name="transformer", kind="behavior",
          description="Transformer encoder over the clicked items with learned positions, then pooling",
          paper="Sun, Liu, Wu, Pei, Lin, Ou, Jiang, BERT4Rec: Sequential Recommendation with Bidirectional "
                "Encoder Representations from Transformer, CIKM 2019",
          params=[
              Param("layers", "int", 2, low=1, high=12, help="Transformer layers"),
              Param("heads", "int", 4, low=1, high=64, help="attention heads; must divide the model width D"),
              Param("ff_dim", "int", 256, low=4, high=8192, help="feed-forward hidden size"),
              Param("dropout", "float", 0.1, low=0.0, high=0.9, help="dropout in the layers"),
              Param("pooling", "choice", "additive", choices=("additive", "mean"), help="how clicks become one vector"),
              Param("attention_dim", "int", 200, low=4, high=1024, help="additive pooling hidden size"),
          ])
class TransformerUser(BehaviorOperator):
    """items [B, H, D], mask [B, H] -> [B, D]."""

    def __init__(self, ctx: BuildContext, layers: int = 2, heads: int = 4, ff_dim: int = 256,
                 dropout: float = 0.1, pooling: str = "additive", attention_dim: int = 200):
        super().__init__()
        check_heads(ctx.dim, heads, "transformer")
        self.encoder = TransformerPooler(ctx.dim, layers, heads, ff_dim, dropout, ctx.max_history, pooling,
                                         attention_dim)

    def forward(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder(items, mask)
