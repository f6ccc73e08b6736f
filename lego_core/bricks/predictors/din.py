"""Deep Interest Network (Zhou et al., KDD 2018): each candidate attends over the user's click
sequence (target attention) with an MLP on [h, c, h - c, h * c]; the weighted history, the user and
the candidate feed an MLP that gives the click logit."""
from __future__ import annotations

import torch
from torch import nn

from lego_core.bricks.base import BuildContext, Predictor
from lego_core.bricks.catalog import Param, register
from lego_core.bricks.layers import mlp, parse_sizes


@register(name="din", kind="predictor",
          description="Target attention of each candidate over the click history, then an MLP (DIN)",
          paper="Zhou, Zhu, Song, Fan, Zhu, Ma, Yan, Jin, Li, Gai, Deep Interest Network for Click-Through "
                "Rate Prediction, KDD 2018",
          params=[
              Param("attention_hidden", "int", 36, low=1, high=1024, help="attention MLP hidden size"),
              Param("hidden", "str", "128,64", help="output MLP hidden sizes, comma-separated"),
              Param("dropout", "float", 0.1, low=0.0, high=0.9, help="dropout in the output MLP"),
          ])
class DINPredictor(Predictor):
    """user [B, D], candidates [B, C, D], history [B, H, D], history_mask [B, H] -> [B, C].

    The attention MLP's first layer on [h, c, h-c, h*c] is split by block: W1 h + W2 c + W3 (h - c)
    = (W1 + W3) h + (W2 - W3) c is computed per history item and per candidate, and only the
    h * c block runs over all [B, C, H] pairs (one batched matmul), which keeps large impressions
    (C ~ 300) cheap.
    Weights are not softmax-normalised (the paper keeps the intensity of interest)."""

    needs_history = True
    losses = ("bce", "softmax")

    def __init__(self, ctx: BuildContext, attention_hidden: int = 36, hidden: str = "128,64", dropout: float = 0.1):
        super().__init__()
        self.dim = ctx.dim
        self.attention_in = nn.Linear(4 * ctx.dim, attention_hidden)
        self.attention_act = nn.PReLU()
        self.attention_out = nn.Linear(attention_hidden, 1)
        self.net = mlp(3 * ctx.dim, parse_sizes(hidden, "din"), dropout, activation=nn.PReLU)

    def attention(self, candidates: torch.Tensor, history: torch.Tensor, history_mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised attention weights [B, C, H], zero on padding."""
        w1, w2, w3, w4 = self.attention_in.weight.split(self.dim, dim=1)  # each [A, D]
        per_history = history @ (w1 + w3).t()  # [B, H, A]
        per_candidate = candidates @ (w2 - w3).t() + self.attention_in.bias  # [B, C, A]
        b, h, a = history.shape[0], history.shape[1], w4.shape[0]
        # (c * h) @ w4.T as one batched matmul of c with (h * w4) [B, H*A, D]: no [B, C, H, D] tensor
        scaled = (history.unsqueeze(2) * w4).reshape(b, h * a, self.dim)
        pairs = torch.bmm(candidates, scaled.transpose(1, 2)).view(b, -1, h, a)  # [B, C, H, A]
        hidden = self.attention_act(pairs + per_history.unsqueeze(1) + per_candidate.unsqueeze(2))
        return self.attention_out(hidden).squeeze(-1) * history_mask.unsqueeze(1).to(hidden.dtype)

    def forward(self, user: torch.Tensor, candidates: torch.Tensor, history: torch.Tensor | None = None,
                history_mask: torch.Tensor | None = None) -> torch.Tensor:
        if history is None or history_mask is None:
            raise ValueError("din needs the history vectors and mask")
        attended = torch.bmm(self.attention(candidates, history, history_mask), history)  # [B, C, D]
        user = user.unsqueeze(1).expand_as(candidates)
        return self.net(torch.cat([attended, user, candidates], dim=-1)).squeeze(-1)
