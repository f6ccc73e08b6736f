"""What the Builder page edits, as data: a `BuilderState` that converts to and from a `Recipe`, the
widgets that edit a brick's catalog params and the `Training` settings (described, not drawn: the
page only renders them), and the one check a recipe gets before the Launch button is enabled."""
from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import annotated_types

from lego_core.errors import LegoError
from lego_core.operators.base import LM_TOKENS
from lego_core.operators.catalog import KINDS, Param, catalog, compatible, get
from lego_core.recipe import VALIDATION_METRICS, Recipe, Training, presets

DEFAULT_PRESET = "nrms"
# A quick test run: one short epoch, checks a recipe end to end in well under a minute.
QUICK = {"training.epochs": 1, "training.max_steps_per_epoch": 20, "training.patience": 0}
# Training settings the Builder shows, in this order (the rest keep their values; the YAML shows all).
TRAINING_FORM = ("dim", "epochs", "batch_size", "negatives", "lr", "lr_pretrained", "patience", "metric",
                 "max_history", "max_length", "loss", "item_id", "item_id_dropout", "glove", "seed",
                 "max_steps_per_epoch")
# Choices that pydantic checks in a validator rather than in the annotation.
_FIELD_CHOICES = {"metric": VALIDATION_METRICS}


# ---- widget descriptions ---------------------------------------------------------------------
@dataclass(frozen=True)
class Widget:
    """One input: `kind` is "checkbox", "int", "float", "select" or "text". `low`/`high` are
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
        return self.none_label if choice is None and self.none_label else str(choice)

    def step_at(self, shown: Any) -> float | None:
        if self.kind == "float" and self.log_step:
            return 10.0 ** (math.floor(math.log10(abs(shown))) - 1) if shown else 0.01
        return self.step


def _param_widget(kind: str, brick: str, p: Param) -> Widget:
    key, label = f"p-{kind}-{brick}-{p.name}", p.name.replace("_", " ")
    if p.type == "int":
        return Widget(p.name, key, label, "int", p.default, None if p.low is None else int(p.low),
                      None if p.high is None else int(p.high), help=p.help, step=1)
    if p.type == "float":
        return Widget(p.name, key, label, "float", p.default, None if p.low is None else float(p.low),
                      None if p.high is None else float(p.high), help=p.help)
    if p.type == "bool":
        return Widget(p.name, key, label, "checkbox", p.default, help=p.help)
    if p.type == "choice" and p.choices:
        return Widget(p.name, key, label, "select", p.default, choices=tuple(p.choices), help=p.help)
    return Widget(p.name, key, label, "text", p.default, help=p.help)


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
    key, help_ = f"t-{name}", info.description or ""
    choices = _FIELD_CHOICES.get(name) or (losses if name == "loss" else ())
    if typing.get_origin(base) is Literal:
        choices = typing.get_args(base)
    if choices:
        return Widget(name, key, name, "select", default, choices=(None, *choices) if optional else tuple(choices),
                      help=help_, optional=optional,
                      none_label=("predictor default" if name == "loss" else "none") if optional else "")
    if base is bool:
        return Widget(name, key, name, "checkbox", default, help=help_)
    if base is int:
        low, high = _bounds(info.metadata, integer=True)
        if optional:  # 0 in the widget stands for None (e.g. no cap)
            return Widget(name, key, name, "int", default, 0, high, help=f"{help_}; 0 = none".lstrip("; "),
                          step=10, optional=True)
        return Widget(name, key, name, "int", default, low, high, help=help_, step=1)
    if base is float:
        low, high = _bounds(info.metadata, integer=False)
        return Widget(name, key, name, "float", default, None if low is None else float(low),
                      None if high is None else float(high), help=help_, log_step=True)
    if base is str:
        return Widget(name, key, name, "text", default, help=help_, optional=optional)
    return None  # lists and other structured fields are edited in YAML


def training_widgets(predictor: str | None = None, names: tuple[str, ...] | None = TRAINING_FORM) -> list[Widget]:
    """Widgets for `Training` fields (`names` in order; None: every field a widget can edit). The
    loss choices are the predictor's own losses when it is given."""
    losses = get(predictor, "predictor").losses if predictor else ("softmax", "bce")
    fields = Training.model_fields
    chosen = [n for n in (names if names is not None else fields) if n in fields]
    return [w for w in (_training_widget(n, tuple(losses)) for n in chosen) if w is not None]


# ---- the state the page edits ------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """The outcome of `BuilderState.check`: `reason` when the bricks do not fit together, `error`
    for any other problem; `recipe` is None only when the state cannot form a recipe at all."""

    recipe: Recipe | None
    reason: str | None = None
    error: LegoError | None = None

    @property
    def ok(self) -> bool:
        return self.recipe is not None and not self.reason and self.error is None


@dataclass
class BuilderState:
    """Dataset + options, the three bricks (by kind) with their changed params, the changed training
    settings, the quick-run switch, and params remembered per brick while another one is chosen."""

    bricks: dict[str, str]
    params: dict[str, dict] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # only values that differ from Training()
    name: str = "custom"
    dataset: str = "ml-100k"
    options: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    remembered: dict[str, dict[str, dict]] = field(default_factory=dict)

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> "BuilderState":
        data, defaults = recipe.model_dump(mode="json"), Training().model_dump(mode="json")
        return cls(bricks={k: data[k]["name"] for k in KINDS}, params={k: dict(data[k]["params"]) for k in KINDS},
                   training={k: v for k, v in data["training"].items() if defaults.get(k) != v},
                   name=data["name"], dataset=data["dataset"]["name"], options=dict(data["dataset"]["options"]))

    @classmethod
    def initial(cls) -> "BuilderState":
        """The default preset (else the first preset that validates, else the first brick of each kind)."""
        names = presets()
        for name in ([DEFAULT_PRESET] if DEFAULT_PRESET in names else []) + names:
            try:
                return cls.from_recipe(Recipe.load(name))
            except LegoError:
                continue
        return cls(bricks={k: next(iter(catalog(k))) for k in KINDS})

    def to_recipe(self) -> Recipe:
        """The recipe (structure checked; see `check` for the bricks), quick-run overrides applied."""
        recipe = Recipe.from_dict({"name": self.name, "dataset": {"name": self.dataset, "options": self.options},
                                   **{k: {"name": self.bricks[k], "params": self.params.get(k, {})} for k in KINDS},
                                   "training": self.training}, "builder")
        return recipe.with_overrides(QUICK) if self.quick else recipe

    # ---- edits --------------------------------------------------------------------------------
    def set_brick(self, kind: str, name: str) -> bool:
        """Put brick `name` in the `kind` slot (its params as last left); True when it changed."""
        if self.bricks[kind] == name:
            return False
        remembered = self.remembered.setdefault(kind, {})
        remembered[self.bricks[kind]] = self.params.get(kind, {})
        self.bricks[kind], self.params[kind] = name, dict(remembered.get(name, {}))
        self.name = "custom"
        return True

    def param(self, kind: str, widget: Widget) -> Any:
        return self.params.get(kind, {}).get(widget.name, widget.default)

    def set_param(self, kind: str, widget: Widget, value: Any) -> None:
        params = self.params.setdefault(kind, {})
        if value != widget.default:
            params[widget.name] = value
        else:
            params.pop(widget.name, None)

    def setting(self, widget: Widget) -> Any:
        return self.training.get(widget.name, widget.default)

    def set_setting(self, widget: Widget, value: Any) -> None:
        if value != widget.default:
            self.training[widget.name] = value
        else:
            self.training.pop(widget.name, None)

    # ---- what the page shows -----------------------------------------------------------------
    def param_widgets(self, kind: str) -> list[Widget]:
        return param_widgets(kind, self.bricks[kind])

    def training_widgets(self) -> list[Widget]:
        return training_widgets(self.bricks["predictor"])

    @property
    def loads_language_model(self) -> bool:
        """True when building the model loads a pretrained language model (slow)."""
        return LM_TOKENS in get(self.bricks["content"], "content").needs

    def check(self) -> Check:
        """The one check before launch: the bricks' compatibility (a reason the page explains), then
        everything `Recipe.check_runnable` checks (bricks, params, dataset options, device)."""
        try:
            recipe = self.to_recipe()
        except LegoError as exc:
            return Check(None, error=exc)
        try:
            reason = compatible(*(self.bricks[k] for k in KINDS))
            if reason:
                return Check(recipe, reason=reason)
            return Check(recipe.check_runnable())
        except LegoError as exc:
            return Check(recipe, error=exc)


def quick_start_recipe(dataset: str = "ml-100k", options: dict | None = None) -> Recipe:
    """The first-launch recipe (the app's one-click quick start when no run exists yet): the
    Builder's default preset on `dataset` with the quick-run overrides (`QUICK`: one epoch of at
    most 20 steps), checked like a Builder launch. LegoError when it cannot run here."""
    state = BuilderState.initial()
    state.dataset, state.options, state.quick = dataset, dict(options or {}), True
    state.name = f"quick-start-{state.name}" if state.name != "custom" else "quick-start"
    check = state.check()
    if not check.ok:
        raise check.error or LegoError(f"the quick-start recipe cannot run: {check.reason}")
    return check.recipe


def field_choices(dataset: Any) -> list[str]:
    """The item fields a recipe's `training.fields` can name for `dataset`: its text fields first,
    then every other item column but the id, generated fields included (`datasets.load` joins
    them into the items)."""
    columns = [str(c) for c in dataset.items.columns if c != "item_id"]
    first = [f for f in dataset.text_fields if f in columns]
    return first + [c for c in columns if c not in first]
