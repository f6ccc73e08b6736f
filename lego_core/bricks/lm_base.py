"""The shared body of the `lm_encoder` and `lm_decoder` content bricks.

A pretrained LM (`lego_core.lm.states.TextStates`, built over `ctx.item_texts`) gives token
states of the requested items; pooling turns them into one vector and a linear layer projects it
to the model width D. Each brick (operators/content/lm_*.py) fixes the loader and its defaults.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from lego_core.core import devices
from lego_core.core.errors import RecipeError
from lego_core.lm.pooling import POOLINGS, Pooling
from lego_core.lm.states import TextStates
from lego_core.lm.tuning import MODES
from lego_core.bricks.base import LM_TOKENS, BuildContext, ContentOperator
from lego_core.bricks.catalog import Param


def lm_params(default_model: str, default_pooling: str) -> list[Param]:
    """The catalog parameters both LM bricks share (defaults differ per brick)."""
    return [
        Param("model", "str", default_model, help="packaged alias (minilm, smollm2), local folder/.gguf, or a "
                                                   "Hugging Face id already in the local cache"),
        Param("max_length", "int", 0, 0, 512, help="tokens per item text; 0 = the recipe's training.max_length"),
        Param("pooling", "choice", default_pooling, choices=POOLINGS, help="token states -> one vector"),
        Param("tuning", "choice", "lora", choices=MODES,
              help="frozen: only pooling+projection train; top: top N layers; lora: adapters; full: all weights"),
        Param("top_layers", "int", 2, 0, 200, help="layers trained by 'top', or carrying LoRA (0 = all layers)"),
        Param("lora_rank", "int", 8, 1, 256),
        Param("lora_alpha", "float", 16.0, 0.1, 1024.0),
        Param("lora_dropout", "float", 0.05, 0.0, 0.9),
        Param("lora_targets", "str", "auto", help="comma list of module names, e.g. q_proj,v_proj; auto = query/value"),
        Param("layer_cache", "bool", True, help="compute frozen lower layers once per item and store them (float16)"),
    ]


class LMContentOperator(TextStates, ContentOperator):
    """Pretrained LM content brick: item text -> LM token states -> pooling -> projection to D."""

    input_kind = LM_TOKENS
    loader: Callable = staticmethod(lambda name: None)

    def __init__(self, ctx: BuildContext, model: str, max_length: int = 0, pooling: str = "mean",
                 tuning: str = "lora", top_layers: int = 2, lora_rank: int = 8, lora_alpha: float = 16.0,
                 lora_dropout: float = 0.05, lora_targets: str = "auto", layer_cache: bool = True):
        brick = getattr(self, "brick_name", type(self).__name__)
        texts = ctx.item_texts
        if texts is None or len(texts) != ctx.num_items:
            raise RecipeError(f"{brick} needs one text per item in ctx.item_texts "
                              f"({ctx.num_items} items, got {None if texts is None else len(texts)})")
        device = devices.torch_device(ctx.device)
        super().__init__(type(self).loader, model, texts, int(max_length) or ctx.max_length, tuning, top_layers,
                         lora_rank, lora_alpha, lora_dropout, lora_targets, layer_cache, device, brick, ctx.amp)
        self.pool = Pooling(pooling, self.hidden_size)
        self.proj = nn.Linear(self.hidden_size, ctx.dim)
        self.to(device)
        self.train(True)

    def forward(self, tokens: torch.Tensor | None, mask: torch.Tensor | None, item_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(tokens, mask, item_ids))

    def body(self, tokens: torch.Tensor | None, mask: torch.Tensor | None, item_ids: torch.Tensor) -> torch.Tensor:
        """Pooled LM states [N, H]: everything but the projection."""
        groups = self.length_groups(item_ids)
        if len(groups) == 1:
            return self._pooled(item_ids)
        vectors = torch.cat([self._pooled(item_ids[g]) for g in groups])
        return vectors[torch.argsort(torch.cat(groups))]  # back to the order asked for

    def head(self, body: torch.Tensor) -> torch.Tensor:
        return self.proj(body)

    def _pooled(self, item_ids: torch.Tensor) -> torch.Tensor:
        hidden, token_mask = self.lm_states(item_ids)
        return self.pool(hidden, token_mask)
