"""How much of a pretrained model trains: `frozen`, `top` N layers, `lora` (optionally only on the
top N layers) or `full`. Each mode also fixes the *boundary*: the first layer whose output can
change during training. Everything below it is frozen and can be served from the layer cache.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lego_core.core.errors import RecipeError
from lego_core.lm.stack import DECODER, LayerStack

MODES = ("frozen", "top", "lora", "full")


@dataclass(frozen=True)
class TuningPlan:
    mode: str
    boundary: int  # original index of the first trainable layer (num_layers when nothing below the head trains)
    lora_layers: tuple[int, ...] = ()
    lora_targets: tuple[str, ...] = ()


def freeze(module: nn.Module, frozen: bool = True) -> None:
    """Switch `requires_grad` off (or on) for every parameter of `module`."""
    for p in module.parameters():
        p.requires_grad_(not frozen)


def default_lora_targets(stack: LayerStack) -> list[str]:
    """The attention query/value projections, named as this model names them."""
    names = {name.rsplit(".", 1)[-1] for name, _ in stack.layers.named_modules()}
    for pair in (["q_proj", "v_proj"], ["query", "value"], ["q_lin", "v_lin"], ["c_attn"]):
        if set(pair) <= names:
            return pair
    raise RecipeError("cannot guess LoRA target modules for this model; set lora_targets (e.g. 'q_proj,v_proj')")


def _top_range(stack: LayerStack, top_layers: int, brick: str, allow_all: bool) -> range:
    n = stack.num_layers
    if allow_all and top_layers == 0:
        return range(0, n)
    if not 1 <= top_layers <= n:
        low = 0 if allow_all else 1
        raise RecipeError(f"{brick}.top_layers must be in [{low}, {n}] for this model ({n} layers), got {top_layers}")
    return range(n - top_layers, n)


def apply_tuning(stack: LayerStack, mode: str, top_layers: int = 2, lora_rank: int = 8, lora_alpha: float = 16.0,
                 lora_dropout: float = 0.05, lora_targets: str | list[str] = "auto", brick: str = "lm") -> TuningPlan:
    """Freeze/unfreeze `stack` in place (injecting LoRA adapters for `lora`) and return the plan.

    `top`: layers L-N..L-1 (and the decoder's final norm) train. `lora`: adapters on the target
    modules of the top N layers (N = 0: all layers); base weights stay frozen. `full`: all."""
    if mode not in MODES:
        raise RecipeError(f"{brick}.tuning must be one of {list(MODES)}, got {mode!r}")
    n = stack.num_layers
    if mode == "full":
        freeze(stack, False)
        return TuningPlan(mode, 0)
    freeze(stack, True)
    if mode == "frozen":
        return TuningPlan(mode, n)
    layers = _top_range(stack, int(top_layers), brick, allow_all=mode == "lora")
    if mode == "top":
        for i in layers:
            freeze(stack.layers[i - stack.first], False)
        if stack.family == DECODER:
            freeze(stack.norm, False)
        return TuningPlan(mode, layers.start)
    raw = lora_targets if isinstance(lora_targets, (list, tuple)) else str(lora_targets).split(",")
    targets = [str(t).strip() for t in raw if str(t).strip()]
    if not targets or targets == ["auto"]:
        targets = default_lora_targets(stack)
    found = {name.rsplit(".", 1)[-1] for name, _ in stack.layers.named_modules()}
    missing = [t for t in targets if t not in found]
    if missing:
        raise RecipeError(f"{brick}.lora_targets names modules {missing} this model does not have; "
                          f"try {default_lora_targets(stack)}")
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=int(lora_rank), lora_alpha=float(lora_alpha), lora_dropout=float(lora_dropout),
                        target_modules=targets, layers_to_transform=list(layers), layers_pattern="layers")
    inject_adapter_in_model(config, stack)
    for name, p in stack.named_parameters():
        p.requires_grad_("lora_" in name)
    return TuningPlan(mode, layers.start, tuple(layers), tuple(targets))
