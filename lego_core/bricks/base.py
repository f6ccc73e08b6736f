"""Contracts between the three kinds of bricks (see DESIGN.md "Contracts").

Every brick is an `nn.Module` built as `Brick(ctx, **params)` where `ctx` is a `BuildContext`
(model width, dataset sizes, pretrained word vectors, ...) and `params` are the hyper-parameters
the catalog declares. Class attributes declare what the brick needs and provides; the recipe
checks compatibility from them, so neither the app nor the trainer has special cases.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

# Input kinds a content operator can read.
WORD_TOKENS = "word_tokens"  # word-vocabulary ids from lego_core.data.tokenize (CNN/attention bricks)
LM_TOKENS = "lm_tokens"  # Hugging Face tokenizer ids of a pretrained language model
ITEM_ID = "item_id"  # only the item index (no text)

# What a behaviour operator provides / a predictor needs.
USER_VECTOR = "user_vector"  # [B, D]
USER_INTERESTS = "user_interests"  # [B, K, D]


@dataclass
class BuildContext:
    """Everything a brick may need to size itself; filled by the model from dataset + recipe."""

    dim: int  # model width D
    num_items: int
    num_users: int
    vocab_size: int = 0  # word vocabulary size (index 0 = padding, 1 = unknown)
    word_vectors: np.ndarray | None = None  # [vocab_size, E] pretrained rows (e.g. GloVe) or None
    max_history: int = 50
    item_texts: list[str] | None = None  # one text per item (item index order), for LM_TOKENS bricks
    device: str = "cpu"  # a lego_core.core.devices name; LM bricks load their model there
    max_length: int = 32  # LM tokens per item text (the recipe's training.max_length)
    amp: bool = False  # the recipe's training.amp: LM bricks run their layers in bfloat16 where it pays


class ContentOperator(nn.Module):
    """Encodes items: `forward(tokens [N, L], mask [N, L], item_ids [N]) -> [N, D]`.

    Each operator uses the inputs its `input_kind` names and ignores the others: WORD_TOKENS
    operators get word-vocabulary tokens; ITEM_ID and LM_TOKENS operators get `tokens=mask=None`
    (an LM operator tokenizes `ctx.item_texts` itself at build time and indexes its own token
    table, or its layer cache, by item id).
    """

    input_kind: ClassVar[str] = WORD_TOKENS

    def forward(self, tokens: torch.Tensor | None, mask: torch.Tensor | None,
                item_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters that start from pretrained weights (GloVe rows, LM layers, LoRA on
        an LM): the trainer gives them the recipe's `lr_pretrained` instead of `lr`."""
        return []

    def body(self, tokens: torch.Tensor | None, mask: torch.Tensor | None, item_ids: torch.Tensor) -> torch.Tensor:
        """The costly part of `forward`, whose output the history cache keeps; `forward` equals
        `head(body(...))`. An operator with a cheap, fast-moving last layer (the LM bricks' projection)
        splits it off as `head`, which then runs on every history row with gradients."""
        return self(tokens, mask, item_ids)

    def head(self, body: torch.Tensor) -> torch.Tensor:
        return body


class BehaviorOperator(nn.Module):
    """Turns history item vectors into a user: `forward(items [B, H, D], mask [B, H] bool,
    user_ids [B]) -> [B, D]` (provides USER_VECTOR) or `[B, K, D]` (USER_INTERESTS).

    Rows with an empty history (mask all False) must give finite output.
    """

    provides: ClassVar[str] = USER_VECTOR

    def forward(self, items: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Predictor(nn.Module):
    """Scores candidates: `forward(user, candidates [B, C, D], history=None, history_mask=None)
    -> scores [B, C]` (logits). `user` is [B, D] or [B, K, D] as `needs` says; predictors with
    `needs_history` also get the history item vectors [B, H, D] and mask [B, H] (DIN).
    `losses` lists the supported training losses, the first being the default."""

    needs: ClassVar[str] = USER_VECTOR
    needs_history: ClassVar[bool] = False
    losses: ClassVar[tuple[str, ...]] = ("softmax", "bce")

    def forward(self, user: torch.Tensor, candidates: torch.Tensor,
                history: torch.Tensor | None = None, history_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


def masked_fill_empty(mask: torch.Tensor) -> torch.Tensor:
    """A mask where rows with no True get their first position set, so softmax over them stays
    finite (their values are padding zeros, giving a zero-ish vector instead of NaN)."""
    empty = ~mask.any(dim=-1, keepdim=True)
    first = torch.zeros_like(mask)
    first[..., 0] = True
    return mask | (empty & first)
