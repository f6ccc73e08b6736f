"""Token states of a pretrained language model over a fixed list of texts.

`TextStates` loads the model, applies the tuning mode, tokenizes every text once into buffers
and, when the layers below the first trainable one are frozen, fills (or reuses) the layer cache
and drops those layers. `lm_states(ids)` then runs only what is needed for the requested texts:
cached states (or token embeddings) -> trainable layers -> final hidden states and mask.

This is the library body of the LM content bricks (`lego_core.bricks.lm_base`), which add
pooling and the projection to the model width; it knows nothing about bricks or datasets.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch
from torch import nn

from lego_core.core import devices
from lego_core.lm import layer_cache as lcache
from lego_core.lm.stack import LayerStack
from lego_core.lm.tuning import apply_tuning


def tokenize(tokenizer, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
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


class TextStates(nn.Module):
    """A pretrained LM bound to `texts`: `lm_states(text_ids)` gives their final hidden states.

    Attributes: `stack` (the layers still run), `plan` (the tuning plan; `plan.boundary` is the
    first trainable layer), `cache` (the layer cache or None), buffers `input_ids`/`token_mask`
    and `hidden_size`. `loader(model)` gives (model, tokenizer); `who` names the caller in errors
    (e.g. the brick name). A brick subclasses it together with its own module kind, so these
    attributes, and so checkpoint keys such as `stack.*`, sit at the brick's top level."""

    def __init__(self, loader: Callable, model: str, texts: list[str], max_length: int, tuning: str = "lora",
                 top_layers: int = 2, lora_rank: int = 8, lora_alpha: float = 16.0, lora_dropout: float = 0.05,
                 lora_targets: str = "auto", layer_cache: bool = True, device: torch.device | str = "cpu",
                 who: str = "lm", amp: bool = False):
        super().__init__()
        net, tokenizer = loader(model)
        self.model_name = model
        self.model_id = net.lego_source.signature()  # the files, whatever name reached them
        stack = LayerStack(net)
        del net  # the stack holds the modules it needs; heads (lm_head, pooler) go
        self.plan = apply_tuning(stack, tuning, top_layers, lora_rank, lora_alpha, lora_dropout, lora_targets, who)
        ids, mask = tokenize(tokenizer, list(texts), int(max_length))
        self.register_buffer("input_ids", torch.from_numpy(ids), persistent=False)
        self.register_buffer("token_mask", torch.from_numpy(mask), persistent=False)
        self.register_buffer("text_lengths", torch.from_numpy(mask.sum(axis=1)), persistent=False)
        self.stack = stack.to(device)
        self.cache: lcache.LayerCache | None = None
        if layer_cache and self.plan.boundary > 0:
            key = lcache.cache_key(self.model_id, tokenizer, ids, mask, self.plan.boundary)
            self.cache = lcache.build_or_load(stack, ids, mask, self.plan.boundary, key, device)
            stack.drop_below(self.plan.boundary)
        self.hidden_size = stack.hidden_size
        # CUDA autocast is the trainer's; on a CPU with native bfloat16 the LM layers use it here
        self.cpu_autocast = bool(amp) and torch.device(device).type == "cpu" and devices.cpu_bf16()

    def lm_states(self, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final hidden states [n, l, H] (float32) and mask [n, l] of the LM for the texts `item_ids`."""
        if not self.cpu_autocast:
            return self._states(item_ids)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden, mask = self._states(item_ids)
        return hidden.float(), mask

    def _states(self, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        item_ids = item_ids.to(self.input_ids.device)
        with torch.no_grad() if self.plan.mode == "frozen" else contextlib.nullcontext():
            if self.cache is not None:
                hidden, mask = self.cache.gather(item_ids, self.input_ids.device)
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

    def length_groups(self, item_ids: torch.Tensor, groups: int = 4, smallest: int = 32) -> list[torch.Tensor]:
        """Positions of `item_ids` in up to `groups` runs of similar text length (shortest first), each
        of at least `smallest` texts. Run per group, a batch pads each text only to its group's
        longest instead of the batch's longest: MovieLens titles average 14 tokens against 30."""
        count = min(groups, len(item_ids) // smallest)
        if count <= 1:
            return [torch.arange(len(item_ids), device=item_ids.device)]
        order = torch.argsort(self.text_lengths[item_ids.to(self.text_lengths.device)], stable=True)
        return list(torch.tensor_split(order.to(item_ids.device), count))

    def train(self, mode: bool = True) -> "TextStates":
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
        """The LM weights (or LoRA adapters) that train."""
        return [p for p in self.stack.parameters() if p.requires_grad]
