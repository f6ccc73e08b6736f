"""MINER's poly attention (Li et al., Findings of ACL 2022): K learned context codes each attend
over the clicked items, giving K interest vectors per user instead of one."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import USER_INTERESTS, BehaviorOperator, BuildContext
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import masked_softmax


@register(name="poly", kind="behavior",
          description="Poly attention: K learned codes attend over the clicks, giving K interest vectors (MINER)",
          paper="Li, Zhu, Lu, Liu, Wang, MINER: Multi-Interest Matching Network for News Recommendation, "
                "Findings of ACL 2022",
          params=[
              Param("interests", "int", 4, low=1, high=64, help="number of interest vectors K"),
              Param("attention_dim", "int", 200, low=4, high=1024, help="attention hidden size"),
          ])
class PolyAttention(BehaviorOperator):
    """items [B, H, D], mask [B, H] -> K interests [B, K, D]: softmax_h(c_k . tanh(W x_h)) weights."""

    provides = USER_INTERESTS

    def __init__(self, ctx: BuildContext, interests: int = 4, attention_dim: int = 200):
        super().__init__()
        self.proj = nn.Linear(ctx.dim, attention_dim, bias=False)
        self.codes = nn.Parameter(torch.empty(interests, attention_dim))
        nn.init.xavier_uniform_(self.codes)

    def history_weights(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        """[B, K, H] each interest's softmax weights over the click vectors (zero on padding): `forward`
        is these weights times the clicks, so an explanation can split MINER's score exactly."""
        scores = torch.matmul(torch.tanh(self.proj(items)), self.codes.t()).transpose(1, 2)  # [B, K, H]
        return masked_softmax(scores, mask.unsqueeze(1))

    def forward(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        return torch.bmm(self.history_weights(items, mask, user_ids), items)
