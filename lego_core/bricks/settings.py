"""Every setting a user can edit, described once: a brick's catalog params and the recipe's
`Training` fields as `Widget`s (kind, label, bounds, choices, help). The Builder draws them and a
sweep checks its search space against them; neither reaches into the other."""
from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types

from lego_core.bricks.catalog import Param, get
from lego_core.bricks.recipe import VALIDATION_METRICS, Training

# Training settings the Builder shows, in this order (the rest keep their values; the YAML shows all).
TRAINING_FORM = ("dim", "epochs", "batch_size", "negatives", "lr", "lr_pretrained", "patience", "metric",
                 "max_history", "max_length", "loss", "item_id", "item_id_dropout", "glove", "seed",
                 "max_steps_per_epoch", "history_cache", "history_max_age")
# Choices that pydantic checks in a validator rather than in the annotation.
_FIELD_CHOICES = {"metric": VALIDATION_METRICS}

# ---- words for settings: what the Builder and a sweep call each one (the config key is in its help)
TRAINING_LABELS = {
    "dim": "Embedding size", "epochs": "Epochs", "batch_size": "Batch size", "negatives": "Negatives per click",
    "lr": "Learning rate", "lr_pretrained": "Learning rate (pretrained parts)", "weight_decay": "Weight decay",
    "patience": "Early-stopping patience", "metric": "Validation metric", "seed": "Random seed",
    "device": "Device", "amp": "Mixed precision", "max_history": "History length", "max_length": "Tokens per item",
    "template": "Item text template", "glove": "GloVe word vectors", "loss": "Loss",
    "max_steps_per_epoch": "Steps per epoch (cap)", "item_id": "Item ID vector",
    "item_id_dropout": "Item ID dropout", "history_cache": "History cache", "history_max_age": "History cache: row age (steps)",
    "eval_batch_size": "Evaluation batch size", "log_every": "Log every (steps)", "loggers": "Experiment trackers"}
# Help for the Training fields whose pydantic description is empty.
TRAINING_HELP = {
    "batch_size": "impressions per training step", "weight_decay": "AdamW weight decay",
    "epochs": "passes over the training impressions at most (early stopping can end sooner)",
    "seed": "seed of the model's initial weights and of the batch order", "device": "where the run trains",
    "eval_batch_size": "users scored at once in validation and test", "log_every": "steps between loss lines"}
# How a choice reads, where its recipe value is a code.
CHOICE_LABELS = {"item_id": {"off": "off", "add": "added", "gate": "gated"}}
PARAM_LABELS = {
    "embed_dim": "Word embedding size", "freeze_embeddings": "Freeze word embeddings", "dropout": "Dropout",
    "heads": "Attention heads", "attention_dim": "Attention size", "filters": "Convolution filters",
    "window": "Convolution window", "layers": "Layers", "ff_dim": "Feed-forward size", "model": "Language model",
    "max_length": "Tokens per item", "pooling": "Pooling", "tuning": "Fine-tuning", "top_layers": "Layers tuned",
    "lora_rank": "LoRA rank", "lora_alpha": "LoRA alpha", "lora_dropout": "LoRA dropout",
    "lora_targets": "LoRA target modules", "layer_cache": "Cache frozen layers", "long_term": "Long-term user vector",
    "user_dropout": "User vector dropout", "interests": "Interest vectors", "cross_layers": "Cross layers",
    "hidden": "Hidden layer sizes", "attention_hidden": "Attention hidden size", "aggregate": "Interest aggregation"}


def described(help_: str, key: str) -> str:
    """A setting's help: what it does, then the config key it sets in a recipe."""
    return f"{help_[:1].upper()}{help_[1:].rstrip('.')}. Config key: `{key}`" if help_ else f"Config key: `{key}`"


def label_of(key: str) -> str:
    """The words for config key `key` ("training.dim" -> "Embedding size", "content.params.heads" ->
    "Attention heads"); the key itself when it has none."""
    name = key.rsplit(".", 1)[-1]
    table = TRAINING_LABELS if key.startswith("training.") else PARAM_LABELS
    return table.get(name, name)


# ---- widget descriptions ---------------------------------------------------------------------
@dataclass(frozen=True)
class Widget:
    """One input: `kind` is "checkbox", "int", "float", "select", "multiselect" or "text". `low`/`high` are
    inclusive bounds of the widget's own type (None: open); `default` is the recipe's value."""

    name: str  # the param or training field it sets
    key: str  # the Streamlit widget key
    label: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    help: str = ""
    step: float | None = None  # None: the widget's own (floats with log_step: see step_at)
    log_step: bool = False  # float steps of one unit in the value's second digit (1e-3 -> 1e-4)
    optional: bool = False  # None in the recipe: 0 in an int widget, "" in a text one
    none_label: str = ""  # how a None choice reads in a select
    choice_labels: tuple[tuple[Any, str], ...] = ()  # how coded choices read ("add" -> "added")

    def shown(self, value: Any) -> Any:
        """The widget's value for a recipe value."""
        if self.kind == "checkbox":
            return bool(value)
        if self.kind == "int":
            return 0 if value is None else int(value)
        if self.kind == "float":
            return float(value)
        if self.kind == "select":
            return value
        if self.kind == "multiselect":
            return [v for v in value or () if v in self.choices]
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return "" if value is None else str(value)

    def read(self, raw: Any, current: Any) -> Any:
        """The recipe value for what the widget returned (`current` kept when left as shown)."""
        if raw == self.shown(current):
            return current
        if self.optional and raw in (0, ""):
            return None
        return raw

    def index(self, value: Any) -> int:
        return self.choices.index(value) if value in self.choices else 0

    def format(self, choice: Any) -> str:
        if choice is None and self.none_label:
            return self.none_label
        return dict(self.choice_labels).get(choice, str(choice))

    def step_at(self, shown: Any) -> float | None:
        if self.kind == "float" and self.log_step:
            return 10.0 ** (math.floor(math.log10(abs(shown))) - 1) if shown else 0.01
        return self.step


def _param_widget(kind: str, brick: str, p: Param) -> Widget:
    key, label = f"p-{kind}-{brick}-{p.name}", PARAM_LABELS.get(p.name, p.name.replace("_", " ").capitalize())
    help_ = described(p.help, f"{kind}.params.{p.name}")
    if p.type == "int":
        return Widget(p.name, key, label, "int", p.default, None if p.low is None else int(p.low),
                      None if p.high is None else int(p.high), help=help_, step=1)
    if p.type == "float":
        return Widget(p.name, key, label, "float", p.default, None if p.low is None else float(p.low),
                      None if p.high is None else float(p.high), help=help_)
    if p.type == "bool":
        return Widget(p.name, key, label, "checkbox", p.default, help=help_)
    if p.type == "choice" and p.choices:
        return Widget(p.name, key, label, "select", p.default, choices=tuple(p.choices), help=help_)
    return Widget(p.name, key, label, "text", p.default, help=help_)


def param_widgets(kind: str, brick: str) -> list[Widget]:
    """One widget per catalog param of brick `brick` of `kind`, in the catalog's order."""
    return [_param_widget(kind, brick, p) for p in get(brick, kind).params]


def _bounds(metadata: list, integer: bool) -> tuple[Any, Any]:
    """Inclusive widget bounds from pydantic's constraint metadata (exclusive float bounds are left
    open: a widget cannot say "above 0"; the recipe's validation still refuses 0)."""
    low = high = None
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            low = m.ge
        elif isinstance(m, annotated_types.Gt) and integer:
            low = m.gt + 1
        elif isinstance(m, annotated_types.Le):
            high = m.le
        elif isinstance(m, annotated_types.Lt) and integer:
            high = m.lt - 1
    return low, high


def _training_widget(name: str, losses: tuple) -> Widget | None:
    info = Training.model_fields[name]
    args = typing.get_args(info.annotation)
    origin = typing.get_origin(info.annotation)
    optional = origin in (typing.Union, types.UnionType) and type(None) in args
    base = next((a for a in args if a is not type(None)), None) if optional else info.annotation
    default = info.get_default(call_default_factory=True)
    key, label, text = f"t-{name}", TRAINING_LABELS.get(name, name), info.description or TRAINING_HELP.get(name, "")
    help_ = described(text, f"training.{name}")
    choices = _FIELD_CHOICES.get(name) or (losses if name == "loss" else ())
    if typing.get_origin(base) is Literal:
        choices = typing.get_args(base)
    if choices:
        return Widget(name, key, label, "select", default, choices=(None, *choices) if optional else tuple(choices),
                      help=help_, optional=optional,
                      none_label=("predictor default" if name == "loss" else "none") if optional else "",
                      choice_labels=tuple(CHOICE_LABELS.get(name, {}).items()))
    if base is bool:
        return Widget(name, key, label, "checkbox", default, help=help_)
    if base is int:
        low, high = _bounds(info.metadata, integer=True)
        if optional:  # 0 in the widget stands for None (e.g. no cap)
            return Widget(name, key, label, "int", default, 0, high, step=10, optional=True,
                          help=described(f"{text}; 0 = none".lstrip("; "), f"training.{name}"))
        return Widget(name, key, label, "int", default, low, high, help=help_, step=1)
    if base is float:
        low, high = _bounds(info.metadata, integer=False)
        return Widget(name, key, label, "float", default, None if low is None else float(low),
                      None if high is None else float(high), help=help_, log_step=True)
    if base is str:
        return Widget(name, key, label, "text", default, help=help_, optional=optional)
    return None  # lists and other structured fields are edited in YAML


def training_widgets(predictor: str | None = None, names: tuple[str, ...] | None = TRAINING_FORM) -> list[Widget]:
    """Widgets for `Training` fields (`names` in order; None: every field a widget can edit). The
    loss choices are the predictor's own losses when it is given."""
    losses = get(predictor, "predictor").losses if predictor else ("softmax", "bce")
    fields = Training.model_fields
    chosen = [n for n in (names if names is not None else fields) if n in fields]
    return [w for w in (_training_widget(n, tuple(losses)) for n in chosen) if w is not None]




def logger_widget() -> Widget:
    """`training.loggers`: the experiment trackers a run also reports to (the run folder's jsonl
    files are always written, so they are no choice here)."""
    info = Training.model_fields["loggers"]
    return Widget("loggers", "t-loggers", TRAINING_LABELS["loggers"], "multiselect", [],
                  choices=("tensorboard", "mlflow"), help=described(info.description or "", "training.loggers"))
