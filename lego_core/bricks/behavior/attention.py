"""NRMS's user encoder (Wu et al., EMNLP 2019): multi-head self-attention relates the clicked
items to each other, additive attention pools them into the user vector."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import BehaviorOperator, BuildContext
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import AdditiveAttention, SelfAttention, check_heads


@register(name="attention", kind="behavior",
          description="Multi-head self-attention over the clicked items, additive attention pooling (NRMS)",
          paper="Wu, Wu, Ge, Qi, Huang, Xie, Neural News Recommendation with Multi-Head Self-Attention, "
                "EMNLP 2019",
          params=[
              Param("heads", "int", 4, low=1, high=64, help="attention heads; must divide the model width D"),
              Param("dropout", "float", 0.2, low=0.0, high=0.9, help="dropout on the attention output"),
              Param("attention_dim", "int", 200, low=4, high=1024, help="additive attention hidden size"),
          ])
class SelfAttentionUser(BehaviorOperator):
    """items [B, H, D] -> MHSA -> dropout -> additive attention -> [B, D]."""

    def __init__(self, ctx: BuildContext, heads: int = 4, dropout: float = 0.2, attention_dim: int = 200):
        super().__init__()
        check_heads(ctx.dim, heads, "attention")
        self.attention = SelfAttention(ctx.dim, heads)
        self.dropout = nn.Dropout(dropout)
        self.pool = AdditiveAttention(ctx.dim, attention_dim)

    def forward(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        return self.pool(self.dropout(self.attention(items, mask)), mask)
