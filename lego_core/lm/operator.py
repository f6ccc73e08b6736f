"""The shared body of the `lm_encoder` and `lm_decoder` content operators.

At build time the operator loads the pretrained model, applies the tuning mode, tokenizes every
item text once into buffers and, when the layers below the first trainable one are frozen, fills
(or reuses) the layer cache and drops those layers. `forward` encodes only the requested items:
cached states (or token embeddings) -> trainable layers -> pooling -> projection to D.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch
from torch import nn

from lego_core.errors import RecipeError
from lego_core.lm import layer_cache as lcache
from lego_core.lm.pooling import POOLINGS, Pooling
from lego_core.lm.stack import LayerStack
from lego_core.lm.tuning import MODES, apply_tuning, trainable_counts
from lego_core.operators.base import LM_TOKENS, BuildContext, ContentOperator
from lego_core.operators.catalog import Param

DEFAULT_MAX_LENGTH = 32


def lm_params(default_model: str, default_pooling: str) -> list[Param]:
    """The catalog parameters both LM operators share (defaults differ per operator)."""
    return [
        Param("model", "str", default_model, help="packaged alias (minilm, smollm2), local folder/.gguf, or a "
                                                   "Hugging Face id already in the local cache"),
        Param("max_length", "int", 0, 0, 512, help="tokens per item text; 0 = the recipe's training.max_length or 32"),
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


def _device(ctx: BuildContext) -> torch.device:
    name = str(ctx.extra.get("device") or "cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(name)
    except RuntimeError:
        return torch.device("cpu")


class LMContentOperator(ContentOperator):
    """Pretrained LM content operator; subclasses fix the loader and defaults."""

    input_kind = LM_TOKENS
    cacheable = True
    loader: Callable = staticmethod(lambda name: None)

    def __init__(self, ctx: BuildContext, model: str, max_length: int = 0, pooling: str = "mean",
                 tuning: str = "lora", top_layers: int = 2, lora_rank: int = 8, lora_alpha: float = 16.0,
                 lora_dropout: float = 0.05, lora_targets: str = "auto", layer_cache: bool = True):
        super().__init__()
        brick = getattr(self, "brick_name", type(self).__name__)
        texts = ctx.extra.get("item_texts")
        if texts is None or len(texts) != ctx.num_items:
            raise RecipeError(f"{brick} needs one text per item in ctx.extra['item_texts'] "
                              f"({ctx.num_items} items, got {None if texts is None else len(texts)})")
        net, tokenizer = type(self).loader(model)
        self.model_name = model
        self.model_id = net.lego_source.signature()  # the files, whatever name reached them
        stack = LayerStack(net)
        del net  # the stack holds the modules it needs; heads (lm_head, pooler) go
        self.plan = apply_tuning(stack, tuning, top_layers, lora_rank, lora_alpha, lora_dropout, lora_targets, brick)
        length = int(max_length) or int(ctx.extra.get("max_length") or DEFAULT_MAX_LENGTH)
        ids, mask = self._tokenize(tokenizer, list(texts), length)
        self.register_buffer("input_ids", torch.from_numpy(ids), persistent=False)
        self.register_buffer("token_mask", torch.from_numpy(mask), persistent=False)
        device = _device(ctx)
        self.stack = stack.to(device)
        self.cache: lcache.LayerCache | None = None
        if layer_cache and self.plan.boundary > 0:
            key = lcache.cache_key(self.model_id, tokenizer, ids, mask, self.plan.boundary)
            self.cache = lcache.build_or_load(stack, ids, mask, self.plan.boundary, key, device)
            stack.drop_below(self.plan.boundary)
        hidden = stack.hidden_size
        self.pool = Pooling(pooling, hidden)
        self.proj = nn.Linear(hidden, ctx.dim)
        self.to(device)
        self.train(True)

    @staticmethod
    def _tokenize(tokenizer, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded token ids [N, L] and mask [N, L] (L = longest text, at most max_length);
        an empty text keeps one padding token so every row attends to something."""
        tokenizer.padding_side = "right"
        enc = tokenizer(texts, max_length=max_length, truncation=True, padding="longest", return_tensors="np")
        ids = np.ascontiguousarray(enc["input_ids"], dtype=np.int64)
        mask = np.ascontiguousarray(enc["attention_mask"], dtype=np.bool_)
        if ids.shape[1] == 0:
            ids = np.full((len(texts), 1), tokenizer.pad_token_id, dtype=np.int64)
            mask = np.zeros((len(texts), 1), dtype=np.bool_)
        mask[~mask.any(axis=1), 0] = True
        return ids, mask

    # ---- encoding ---------------------------------------------------------------------------
    def lm_states(self, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final hidden states [n, l, H] and mask [n, l] of the LM for `item_ids`."""
        item_ids = item_ids.to(self.input_ids.device)
        with torch.no_grad() if self.plan.mode == "frozen" else contextlib.nullcontext():
            if self.cache is not None:
                hidden, mask = self.cache.gather(item_ids, self.proj.weight.device)
                return self.stack.run(hidden, mask, self.plan.boundary), mask
            mask = self.token_mask[item_ids]
            length = max(int(mask.sum(dim=1).max()), 1) if len(item_ids) else 1
            mask = mask[:, :length]
            ids = self.input_ids[item_ids, :length]
            if self.plan.boundary > 0:  # frozen lower layers: no graph needed below the boundary
                with torch.no_grad():
                    hidden = self.stack.run(self.stack.embed_tokens(ids), mask, 0, self.plan.boundary)
                return self.stack.run(hidden, mask, self.plan.boundary), mask
            return self.stack.run(self.stack.embed_tokens(ids), mask, 0), mask

    def forward(self, tokens: torch.Tensor | None, mask: torch.Tensor | None, item_ids: torch.Tensor) -> torch.Tensor:
        hidden, token_mask = self.lm_states(item_ids)
        return self.proj(self.pool(hidden, token_mask))

    # ---- training helpers ---------------------------------------------------------------------
    def train(self, mode: bool = True) -> "LMContentOperator":
        """Frozen layers always run in eval mode (no dropout), so they match the layer cache."""
        super().train(mode)
        stack = self.stack
        if self.plan.mode == "frozen":
            stack.eval()
        elif self.plan.boundary > 0:
            if stack.embed is not None:
                stack.embed.eval()
            for i in range(stack.first, self.plan.boundary):
                stack.layers[i - stack.first].eval()
        return self

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.stack.parameters() if p.requires_grad]

    def trainable_summary(self) -> dict:
        """Trainable/total parameter counts of the LM and the boundary layer (for logs/the app)."""
        return {**trainable_counts(self.stack), "mode": self.plan.mode, "boundary": self.plan.boundary,
                "layers": self.stack.num_layers, "layer_cache": self.cache is not None}
