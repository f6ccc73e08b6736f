"""Item-id embedding: one learned vector per item, no text. The collaborative-filtering baseline
every text encoder is measured against (Koren et al., Matrix Factorization Techniques, 2009)."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import ITEM_ID, BuildContext, ContentOperator
from lego_core.bricks.catalog import Param, register


@register(name="idembed", kind="content",
          description="A learned vector per item id (no text): the collaborative-filtering baseline",
          paper="Koren, Bell, Volinsky, Matrix Factorization Techniques for Recommender Systems, IEEE Computer 2009",
          params=[Param("dropout", "float", 0.0, low=0.0, high=0.9, help="dropout on the item vectors")])
class IdEmbedding(ContentOperator):
    """[N] item ids -> [N, D] from a num_items x D table."""

    input_kind = ITEM_ID

    def __init__(self, ctx: BuildContext, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(max(ctx.num_items, 1), ctx.dim)
        nn.init.normal_(self.embedding.weight, std=ctx.dim ** -0.5)  # unit-norm-ish vectors, tame dot products
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor | None, mask: torch.Tensor | None,
                item_ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embedding(item_ids))
