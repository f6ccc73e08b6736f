"""NAML's title encoder (Wu et al., IJCAI 2019): word embeddings, a 1-D convolution for local
context, then additive attention picks the informative words."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import BuildContext
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import AdditiveAttention, TokenIndex, WordContentOperator, WordEmbedding, word_params


@register(name="cnn", kind="content",
          description="Convolution over word embeddings with additive attention pooling (NAML)",
          paper="Wu, Wu, An, Huang, Huang, Xie, Neural News Recommendation with Attentive Multi-View "
                "Learning, IJCAI 2019",
          params=word_params(dropout=0.2) + [
              Param("filters", "int", 0, low=0, high=2048,
                    help="convolution filters; 0 = the model width D (no output projection)"),
              Param("window", "int", 3, low=1, high=15, help="convolution window in words"),
              Param("attention_dim", "int", 200, low=4, high=1024, help="additive attention hidden size"),
          ])
class CNNEncoder(WordContentOperator):
    """tokens [N, L] -> embeddings -> dropout -> Conv1d -> ReLU -> dropout -> additive attention -> [N, D].

    The convolution runs over one stream holding every item's real words back to back, separated
    by `window // 2` zeros: each word sees exactly the neighbours (and zero padding) it would see
    in its own zero-padded row, without convolving the batch's padding."""

    def __init__(self, ctx: BuildContext, embed_dim: int = 50, freeze_embeddings: bool = False,
                 dropout: float = 0.2, filters: int = 0, window: int = 3, attention_dim: int = 200):
        super().__init__()
        self.words = WordEmbedding(ctx, embed_dim, freeze_embeddings)
        filters = filters or ctx.dim
        self.dropout = nn.Dropout(dropout)
        # "same" padding keeps one output per word; an even window pads one more on the right
        self.pad = ((window - 1) // 2, window // 2)
        self.gap = window // 2  # zeros between items in the stream
        self.conv = nn.Conv1d(self.words.dim, filters, window)
        self.attention = AdditiveAttention(filters, attention_dim)
        self.proj = nn.Linear(filters, ctx.dim) if filters != ctx.dim else nn.Identity()

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        index = TokenIndex(mask)
        words = self.dropout(self.words(index.pack(tokens)))  # [T, E]
        slots = index.lengths + self.gap
        starts = torch.cumsum(slots, 0) - slots  # where each item's first word goes in the stream
        positions = starts.index_select(0, index.rows) + index.ranks
        size = max(int(slots.sum()), 1)  # at least one position, so the conv always has input
        stream = words.new_zeros(size, words.shape[1]).index_copy(0, positions, words)
        stream = nn.functional.pad(stream.t().unsqueeze(0), self.pad)
        features = self.conv(stream)[0].t().index_select(0, positions)  # [T, F]
        return self.proj(self.attention.pool(self.dropout(torch.relu(features)), index))
