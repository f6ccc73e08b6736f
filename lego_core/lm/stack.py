"""A pretrained transformer split into embeddings, a layer list and a final norm.

The layer cache needs to run "layers k..L" on stored hidden states, which the Hugging Face
`forward` cannot do. `LayerStack` holds the same modules (no copies) and rebuilds exactly what the
model's own forward passes to each layer: the bidirectional mask for BERT-like encoders; the causal
mask, position ids and rotary position embeddings for Llama-like decoders (SmolLM2, Qwen2, Mistral).
"""
from __future__ import annotations

import torch
from torch import nn

from lego_core.core.errors import RecipeError

ENCODER, DECODER = "encoder", "decoder"


def base_model(model: nn.Module) -> nn.Module:
    """The bare transformer (LlamaModel inside LlamaForCausalLM; BertModel is its own base)."""
    return getattr(model, "base_model", model)


def family_of(model: nn.Module) -> str:
    """'decoder' for Llama-like, 'encoder' for BERT-like models; RecipeError for other shapes."""
    base = base_model(model)
    if all(hasattr(base, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
        return DECODER
    if hasattr(base, "embeddings") and hasattr(getattr(base, "encoder", None), "layer"):
        return ENCODER
    raise RecipeError(f"model type {type(base).__name__} is neither BERT-like (embeddings + encoder.layer) nor "
                      "Llama-like (embed_tokens + layers + norm + rotary_emb); pick such a model")


class LayerStack(nn.Module):
    """Runs any contiguous range of a pretrained model's layers, given that range's input."""

    def __init__(self, model: nn.Module):
        super().__init__()
        base = base_model(model)
        self.family = family_of(model)
        self.config = base.config
        if self.family == DECODER:
            self.embed, self.layers, self.norm = base.embed_tokens, base.layers, base.norm
            self.rotary = base.rotary_emb
        else:
            self.embed, self.layers, self.norm = base.embeddings, base.encoder.layer, nn.Identity()
            self.rotary = None
        self.num_layers = len(self.layers)  # of the original model
        self.first = 0  # original index of self.layers[0] (> 0 once lower layers are dropped)
        self.hidden_size = int(self.config.hidden_size)
        self.train(model.training)  # keep the loaded model's mode (eval: no dropout)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids [N, L] -> input of layer 0 [N, L, H]."""
        if self.embed is None:
            raise RuntimeError("the embeddings were dropped (layer cache in use); read the cache instead")
        if self.family == DECODER:
            return self.embed(input_ids)
        return self.embed(input_ids=input_ids)

    def _layer_types(self) -> list[str]:
        types = getattr(self.config, "layer_types", None)
        return list(types) if types else ["full_attention"] * self.num_layers

    def _masks(self, hidden: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor | None) -> dict:
        from transformers import masking_utils as mu

        if self.family == ENCODER:
            return {"full_attention": mu.create_bidirectional_mask(config=self.config, inputs_embeds=hidden,
                                                                     attention_mask=mask)}
        kw = dict(config=self.config, inputs_embeds=hidden, attention_mask=mask, cache=None, position_ids=positions)
        masks = {"full_attention": mu.create_causal_mask(**kw)}
        if "sliding_attention" in self._layer_types():
            masks["sliding_attention"] = mu.create_sliding_window_causal_mask(**kw)
        return masks

    def run(self, hidden: torch.Tensor, mask: torch.Tensor, start: int, stop: int | None = None) -> torch.Tensor:
        """Apply original layers [start, stop) to `hidden` (the input of layer `start`) with token
        `mask` [N, L]; the final norm follows when the range ends at the last layer (an empty
        range returns `hidden` unchanged, e.g. cached final states)."""
        stop = self.num_layers if stop is None else stop
        if start < self.first:
            raise RuntimeError(f"layers below {self.first} were dropped; cannot start at layer {start}")
        if start < stop:
            mask = mask.to(torch.long)
            positions = None
            kwargs: dict = {}
            if self.family == DECODER:
                positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
                kwargs = {"position_ids": positions, "position_embeddings": self.rotary(hidden, positions)}
            masks = self._masks(hidden, mask, positions)
            types = self._layer_types()
            for index in range(start, stop):
                layer = self.layers[index - self.first]
                attention = masks[types[index]]
                out = layer(hidden, attention_mask=attention, **kwargs)
                hidden = out[0] if isinstance(out, tuple) else out
            if stop == self.num_layers:
                hidden = self.norm(hidden)
        return hidden

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Full forward: token ids -> final hidden states (same as the model's last_hidden_state)."""
        return self.run(self.embed_tokens(input_ids), mask, 0)

    def drop_below(self, start: int) -> None:
        """Forget the embeddings and layers below `start` (their output is cached): saves memory
        and keeps checkpoints small."""
        if start <= self.first:
            return
        self.layers = nn.ModuleList(list(self.layers)[start - self.first:])
        self.embed = None
        self.first = start
