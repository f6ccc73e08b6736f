"""LSTUR's user encoder (An et al., ACL 2019): a GRU reads the clicks in time order (short-term
interest); a learned per-user embedding (long-term interest) initialises its hidden state (the
paper's "ini" variant) and is randomly masked during training so unseen users still work."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import BehaviorOperator, BuildContext
from lego_core.bricks.catalog import Param, register


@register(name="gru", kind="behavior",
          description="GRU over the clicks in time order, started from a long-term user embedding (LSTUR)",
          paper="An, Wu, Wu, Zhang, Liu, Xie, Neural News Recommendation with Long- and Short-term User "
                "Representations, ACL 2019",
          params=[
              Param("long_term", "bool", True, help="initialise the GRU with a learned per-user embedding"),
              Param("user_dropout", "float", 0.5, low=0.0, high=1.0,
                    help="probability of masking a user's long-term embedding during training"),
          ])
class GRUUser(BehaviorOperator):
    """items [B, H, D] (left-aligned, oldest first), mask [B, H], user_ids [B] -> the GRU state after
    the last valid click [B, D]; an empty history gives the initial state."""

    def __init__(self, ctx: BuildContext, long_term: bool = True, user_dropout: float = 0.5):
        super().__init__()
        self.gru = nn.GRU(ctx.dim, ctx.dim, batch_first=True)
        self.users = nn.Embedding(max(ctx.num_users, 1), ctx.dim) if long_term else None
        if self.users is not None:
            nn.init.normal_(self.users.weight, std=0.1)
        self.user_dropout = user_dropout

    def initial_state(self, items: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        """[B, D]: the long-term user embedding (masked per user while training), or zeros."""
        if self.users is None:
            return items.new_zeros(items.shape[0], items.shape[2])
        state = self.users(user_ids)
        if self.training and self.user_dropout > 0:
            keep = torch.rand(state.shape[0], 1, device=state.device) >= self.user_dropout
            state = state * keep.to(state.dtype)
        return state

    def forward(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        h0 = self.initial_state(items, user_ids).to(items.dtype)
        # one dense GRU pass; outputs after the last valid click never see the trailing padding
        outputs, _ = self.gru(items, h0.unsqueeze(0).contiguous())
        lengths = mask.sum(dim=1)
        last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, outputs.shape[2])
        final = outputs.gather(1, last).squeeze(1)
        return torch.where((lengths > 0).unsqueeze(1), final, h0)
