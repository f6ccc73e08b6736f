"""Transformer encoder over the words (Vaswani et al., NeurIPS 2017) with learned positions,
pooled by masked mean or additive attention."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import BuildContext
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import (TokenIndex, TransformerPooler, WordContentOperator, WordEmbedding, check_heads,
                                        word_params)

MAX_POSITIONS = 512


@register(name="transformer", kind="content",
          description="Transformer encoder layers over words with learned positions, then pooling",
          paper="Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser, Polosukhin, Attention Is All "
                "You Need, NeurIPS 2017",
          params=word_params(dropout=0.1) + [
              Param("layers", "int", 2, low=1, high=12, help="Transformer layers"),
              Param("heads", "int", 4, low=1, high=64, help="attention heads; must divide the model width D"),
              Param("ff_dim", "int", 256, low=4, high=8192, help="feed-forward hidden size"),
              Param("pooling", "choice", "additive", choices=("additive", "mean"), help="how words become one vector"),
              Param("attention_dim", "int", 200, low=4, high=1024, help="additive pooling hidden size"),
          ])
class TransformerItemEncoder(WordContentOperator):
    """tokens [N, L] -> embeddings -> Linear to D -> positions -> TransformerEncoder -> pooling."""

    def __init__(self, ctx: BuildContext, embed_dim: int = 50, freeze_embeddings: bool = False,
                 dropout: float = 0.1, layers: int = 2, heads: int = 4, ff_dim: int = 256,
                 pooling: str = "additive", attention_dim: int = 200):
        super().__init__()
        check_heads(ctx.dim, heads, "transformer")
        self.words = WordEmbedding(ctx, embed_dim, freeze_embeddings)
        self.proj = nn.Linear(self.words.dim, ctx.dim)
        self.encoder = TransformerPooler(ctx.dim, layers, heads, ff_dim, dropout, MAX_POSITIONS, pooling,
                                         attention_dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        index = TokenIndex(mask)  # per-token layers on the real words; the encoder per length bucket
        return self.encoder.packed(self.proj(self.words(index.pack(tokens))), index)
