"""Mean of the clicked items' vectors: the user as the average of what they consumed, as in the
YouTube candidate generator (Covington et al., RecSys 2016)."""
from __future__ import annotations

import torch

from lego_core.bricks.base import BehaviorOperator, BuildContext
from lego_core.bricks.catalog import register
from lego_core.bricks.layers import masked_mean


@register(name="pooling", kind="behavior",
          description="Average of the clicked items' vectors",
          paper="Covington, Adams, Sargin, Deep Neural Networks for YouTube Recommendations, RecSys 2016")
class MeanPooling(BehaviorOperator):
    """items [B, H, D], mask [B, H] -> masked mean [B, D] (zeros for an empty history)."""

    def __init__(self, ctx: BuildContext):
        super().__init__()

    def history_weights(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        """[B, H] the weights `forward` sums the click vectors with (1/n on the n clicks, zero on
        padding), so an explanation can split a dot-product score exactly over the clicks."""
        return mask.to(items.dtype) / mask.sum(dim=1, keepdim=True).clamp(min=1).to(items.dtype)

    def forward(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        return masked_mean(items, mask)
