"""Token states [N, L, H] + mask [N, L] -> one vector per item [N, H].

`mean` suits encoders (MiniLM was trained with mean pooling); `last` suits decoders, whose last
token has attended to the whole text; `attention` learns additive attention weights (NRMS/PLM-NR).
Texts are right-padded, so the last real token sits at position length-1.
"""
from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("mean", "last", "attention")


class Pooling(nn.Module):
    def __init__(self, kind: str, hidden: int, attention_dim: int = 128):
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {kind!r}")
        self.kind = kind
        if kind == "attention":
            self.score = nn.Sequential(nn.Linear(hidden, attention_dim), nn.Tanh(),
                                       nn.Linear(attention_dim, 1, bias=False))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.bool()
        if self.kind == "mean":
            weights = mask.to(hidden.dtype).unsqueeze(-1)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if self.kind == "last":
            last = (mask.long().sum(1) - 1).clamp(min=0)
            return hidden[torch.arange(len(hidden), device=hidden.device), last]
        logits = self.score(hidden).squeeze(-1).masked_fill(~mask, torch.finfo(hidden.dtype).min)
        weights = torch.softmax(logits, dim=1).unsqueeze(-1)
        return (hidden * weights).sum(1)
