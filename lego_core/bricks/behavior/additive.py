"""NAML's user encoder (Wu et al., IJCAI 2019): additive attention weighs the clicked items by
how informative they are about the user."""
from __future__ import annotations

import torch

from lego_core.bricks.base import BehaviorOperator, BuildContext
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import AdditiveAttention


@register(name="additive", kind="behavior",
          description="Additive attention over the clicked items (NAML)",
          paper="Wu, Wu, An, Huang, Huang, Xie, Neural News Recommendation with Attentive Multi-View "
                "Learning, IJCAI 2019",
          params=[Param("attention_dim", "int", 200, low=4, high=1024, help="additive attention hidden size")])
class AdditiveUser(BehaviorOperator):
    """items [B, H, D], mask [B, H] -> attention-weighted sum [B, D]."""

    def __init__(self, ctx: BuildContext, attention_dim: int = 200):
        super().__init__()
        self.attention = AdditiveAttention(ctx.dim, attention_dim)

    def history_weights(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        """[B, H] the softmax weights `forward` sums the click vectors with (zero on padding), so an
        explanation can split a dot-product score exactly over the clicks."""
        return self.attention.weights(items, mask)

    def forward(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        return self.attention(items, mask)
