"""What the Builder page edits, as data: a `BuilderState` that converts to and from a `Recipe`, the
widgets that edit a brick's catalog params and the `Training` settings (described, not drawn: the
page only renders them), and the one check a recipe gets before the Launch button is enabled."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


from lego_core.core.errors import LegoError
from lego_core.bricks.base import LM_TOKENS
from lego_core.bricks.catalog import KINDS, catalog, compatible, get
from lego_core.bricks.recipe import Recipe, Training, presets

from lego_core.bricks.settings import TRAINING_FORM, Widget, logger_widget, param_widgets, training_widgets  # noqa: F401

DEFAULT_PRESET = "nrms"
# A quick test run: one short epoch, checks a recipe end to end in well under a minute.
QUICK = {"training.epochs": 1, "training.max_steps_per_epoch": 20, "training.patience": 0}
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
    def preset(self) -> str | None:
        """The preset these bricks, params and training settings are (dataset and quick run aside),
        None once any of them differs from every preset: the Builder then says "Custom"."""
        mine = self._shape()
        return next((name for name, shape in _preset_shapes() if shape == mine), None)

    def _shape(self) -> tuple:
        return (tuple(self.bricks[k] for k in KINDS), tuple(sorted((k, repr(sorted(self.params.get(k, {}).items())))
                                                                   for k in KINDS)),
                repr(sorted(self.training.items())))

    def param_widgets(self, kind: str) -> list[Widget]:
        return param_widgets(kind, self.bricks[kind])

    def training_widgets(self) -> list[Widget]:
        return training_widgets(self.bricks["predictor"])

    def logger_widget(self) -> Widget:
        """The choice of experiment trackers (`training.loggers`)."""
        return logger_widget()

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


@lru_cache(maxsize=1)
def _preset_shapes() -> tuple[tuple[str, tuple], ...]:
    """(name, shape) of every preset that loads (presets are package data: read once)."""
    shapes = []
    for name in presets():
        try:
            shapes.append((name, BuilderState.from_recipe(Recipe.preset(name))._shape()))
        except LegoError:
            continue
    return tuple(shapes)


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
