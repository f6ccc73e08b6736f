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

    def forward(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        return masked_mean(items, mask)
