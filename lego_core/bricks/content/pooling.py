"""Mean of word embeddings projected to the model width: the simplest text encoder (a deep
averaging network without hidden layers; Iyyer et al., ACL 2015)."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import BuildContext
from lego_core.bricks.catalog import register
from lego_core.bricks.layers import TokenIndex, WordContentOperator, WordEmbedding, word_params


@register(name="pooling", kind="content",
          description="Average of the title's word embeddings, projected to the model width",
          paper="Iyyer, Manjunatha, Boyd-Graber, Daume III, Deep Unordered Composition Rivals Syntactic "
                "Methods for Text Classification, ACL 2015",
          params=word_params(dropout=0.0))
class WordPooling(WordContentOperator):
    """tokens [N, L] -> masked mean of embeddings -> Linear -> [N, D]. The projection is linear, so
    it is applied after the mean (same result, L times cheaper)."""

    def __init__(self, ctx: BuildContext, embed_dim: int = 50, freeze_embeddings: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.words = WordEmbedding(ctx, embed_dim, freeze_embeddings)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(self.words.dim, ctx.dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        index = TokenIndex(mask)
        total = index.sum(self.words(index.pack(tokens)))  # [N, E]
        mean = total / index.lengths.clamp(min=1).unsqueeze(1).to(total.dtype)
        return self.proj(self.dropout(mean))
