"""NRMS's news encoder (Wu et al., EMNLP 2019): multi-head self-attention over the words models
their interactions, additive attention pools them into the item vector."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import BuildContext
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import (AdditiveAttention, SelfAttention, TokenIndex, WordContentOperator,
                                        WordEmbedding, check_heads, word_params)


@register(name="attention", kind="content",
          description="Multi-head self-attention over words, additive attention pooling (NRMS)",
          paper="Wu, Wu, Ge, Qi, Huang, Xie, Neural News Recommendation with Multi-Head Self-Attention, "
                "EMNLP 2019",
          params=word_params(dropout=0.2) + [
              Param("heads", "int", 4, low=1, high=64, help="attention heads; must divide the model width D"),
              Param("attention_dim", "int", 200, low=4, high=1024, help="additive attention hidden size"),
          ])
class SelfAttentionEncoder(WordContentOperator):
    """tokens [N, L] -> embeddings -> dropout -> Linear to D -> MHSA -> dropout -> additive attention."""

    def __init__(self, ctx: BuildContext, embed_dim: int = 50, freeze_embeddings: bool = False,
                 dropout: float = 0.2, heads: int = 4, attention_dim: int = 200):
        super().__init__()
        check_heads(ctx.dim, heads, "attention")
        self.words = WordEmbedding(ctx, embed_dim, freeze_embeddings)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(self.words.dim, ctx.dim)
        self.attention = SelfAttention(ctx.dim, heads)
        self.pool = AdditiveAttention(ctx.dim, attention_dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        index = TokenIndex(mask)  # per-token layers run on the real words only
        y = self.proj(self.dropout(self.words(index.pack(tokens))))
        return self.pool.pool(self.dropout(self.attention.packed(y, index)), index)
