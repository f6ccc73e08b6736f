"""Fastformer item encoder (Wu et al., 2021): additive-attention Transformer layers, linear in
the text length, then additive attention pooling."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import BuildContext
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import (FastformerEncoder, TokenIndex, WordContentOperator, WordEmbedding,
                                        check_heads, word_params)

MAX_POSITIONS = 512


@register(name="fastformer", kind="content",
          description="Fastformer layers (global additive query/key attention) over words, then pooling",
          paper="Wu, Wu, Qi, Huang, Xie, Fastformer: Additive Attention Can Be All You Need, arXiv 2021",
          params=word_params(dropout=0.1) + [
              Param("layers", "int", 1, low=1, high=12, help="Fastformer layers"),
              Param("heads", "int", 4, low=1, high=64, help="attention heads; must divide the model width D"),
              Param("ff_dim", "int", 256, low=4, high=8192, help="feed-forward hidden size"),
              Param("attention_dim", "int", 200, low=4, high=1024, help="additive pooling hidden size"),
          ])
class FastformerItemEncoder(WordContentOperator):
    """tokens [N, L] -> embeddings -> Linear to D -> positions -> Fastformer x layers -> pooling."""

    def __init__(self, ctx: BuildContext, embed_dim: int = 50, freeze_embeddings: bool = False,
                 dropout: float = 0.1, layers: int = 1, heads: int = 4, ff_dim: int = 256,
                 attention_dim: int = 200):
        super().__init__()
        check_heads(ctx.dim, heads, "fastformer")
        self.words = WordEmbedding(ctx, embed_dim, freeze_embeddings)
        self.proj = nn.Linear(self.words.dim, ctx.dim)
        self.encoder = FastformerEncoder(ctx.dim, layers, heads, ff_dim, dropout, MAX_POSITIONS, attention_dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        index = TokenIndex(mask)  # Fastformer is per-token or per-row: no padded layout needed
        return self.encoder(self.proj(self.words(index.pack(tokens))), index)
