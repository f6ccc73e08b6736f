"""A sweep spec: a base recipe, per slot the bricks to try, parameter ranges within the catalog's
ranges, seeds per configuration, a budget, the metric, the sampler and the pruner.

`SweepSpec.load(spec, overrides=None)` reads YAML text, a .yaml path or a mapping and validates
it like a recipe: every problem is a SweepError in one line naming the field and the fix. The
loaded spec is self-contained (the base recipe as a mapping, slots and seeds expanded), so it can
be stored with the sweep and read by a worker on another machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lego_core.core.errors import LegoError
from lego_core.bricks.catalog import KINDS, compatible, get as get_brick
from lego_core.bricks.recipe import VALIDATION_METRICS, Recipe, read_yaml

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "halving")
MAX_GRID = 20000  # grid points (before removing incompatible and duplicated configurations)
# Training fields a sweep sets itself or that make no sense to vary.
FIXED_TRAINING = {"seed": "use `seeds`", "metric": "use `metric`", "device": "use `device`",
                  "log_every": "it changes logging only", "eval_batch_size": "it changes no result"}


class SweepError(LegoError):
    """A sweep spec is malformed, or a sweep is missing or cannot do what was asked."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamRange(_Strict):
    """A parameter's values: a list, or a range low..high (log scale on request) that a grid
    samples at `points` values. Omitted bounds are the catalog's."""

    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    points: int = Field(3, ge=2, le=20, description="values a grid takes from a range")


class Budget(_Strict):
    trials: int = Field(20, ge=1, le=100000, description="runs in all (configurations x seeds)")
    minutes: float | None = Field(None, gt=0, description="wall time the sweep's workers may spend starting trials")


class PrunerSpec(_Strict):
    name: Literal["none", "median", "halving"] = "none"
    min_epochs: int = Field(1, ge=1, description="epochs a trial runs before it may be pruned")
    startup_trials: int = Field(3, ge=0, description="median: finished trials before pruning starts")
    reduction_factor: int = Field(3, ge=2, description="halving: keep 1 in this many at each rung")


class SweepSpec(_Strict):
    name: str = Field("sweep", min_length=1, max_length=60)
    base: Any = Field(..., description="the recipe every trial starts from: preset name, .yaml path or mapping")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted overrides of the base recipe")
    slots: dict[Literal["content", "behavior", "predictor"], list[str] | Literal["all"]] = Field(default_factory=dict)
    params: dict[str, ParamRange] = Field(default_factory=dict)
    seeds: int | list[int] = Field(1, description="seeds per configuration: a count or the seeds")
    budget: Budget = Field(default_factory=Budget)
    metric: str | None = Field(None, description="validation metric to optimise (default: the base's)")
    sampler: Literal["grid", "random", "tpe"] = "tpe"
    sampler_seed: int | None = Field(None, ge=0)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    device: str = "auto"
    max_concurrent: int | None = Field(None, ge=1, description="runs at once on the device (default: the scheduler's)")
    command: list[str] | None = Field(None, description="argv template replacing the trainer, as in "
                                      "jobs.launch(command=...): \"{run_dir}\" and \"{resume}\" are filled in")

    @field_validator("params", mode="before")
    @classmethod
    def _lists_are_values(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {key: ({"values": v} if isinstance(v, (list, tuple)) else {} if v in (None, "catalog") else v)
                for key, v in value.items()}

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not all(isinstance(p, str) and p for p in value)):
            raise ValueError("must be a non-empty list of non-empty strings (an argv template)")
        return value

    @field_validator("pruner", mode="before")
    @classmethod
    def _pruner_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    # ---- loading ----------------------------------------------------------------------------
    @classmethod
    def load(cls, spec: Any, overrides: dict[str, Any] | None = None) -> "SweepSpec":
        """A validated spec from a SweepSpec, a mapping, YAML text or a .yaml path."""
        if isinstance(spec, SweepSpec):
            data = spec.model_dump(mode="json")
        elif isinstance(spec, dict):
            data = dict(spec)
        else:
            try:
                _, _, data = read_yaml(spec)
            except LegoError as exc:
                raise SweepError(str(exc).replace("recipe", "sweep spec", 1)) from None
        if not isinstance(data, dict):
            raise SweepError("sweep spec: must be a YAML mapping with at least `base` (the recipe to start from)")
        data.update(overrides or {})
        try:
            loaded = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "spec"
            got = f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err["input"], dict) else ""
            raise SweepError(f"sweep spec: field '{where}': {err['msg']}{got}") from None
        return loaded._resolved()

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)

    # ---- validation -------------------------------------------------------------------------
    def _resolved(self) -> "SweepSpec":
        try:
            base = Recipe.load(self.base, self.set or None)
        except LegoError as exc:
            raise SweepError(f"sweep spec: field 'base': {exc}") from None
        metric = self.metric or base.training.metric
        if metric not in VALIDATION_METRICS:
            _fail("metric", f"must be one of {list(VALIDATION_METRICS)} (got {metric!r})")
        slots = {kind: self._slot(kind, base) for kind in KINDS}
        valid = [(c, b, p) for c in slots["content"] for b in slots["behavior"] for p in slots["predictor"]
                 if compatible(c, b, p) is None]
        if not valid:
            reason = compatible(slots["content"][0], slots["behavior"][0], slots["predictor"][0])
            _fail("slots", f"no combination of these bricks fits together ({reason})")
        for kind in KINDS:  # "all": the bricks that fit into some valid combination
            slots[kind] = [name for name in slots[kind] if any(t[KINDS.index(kind)] == name for t in valid)]
        seeds = (list(range(base.training.seed, base.training.seed + self.seeds)) if isinstance(self.seeds, int)
                 else list(self.seeds))
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            _fail("seeds", "give a count >= 1 or a list of distinct seeds >= 0, e.g. 3 or [1, 2, 3]")
        if len(seeds) > self.budget.trials:
            _fail("budget.trials", f"{self.budget.trials} is fewer than the {len(seeds)} seeds one configuration "
                  "needs; raise budget.trials or use fewer seeds")
        resolved = self.model_copy(update={"base": base.model_dump(mode="json"), "set": {}, "slots": slots,
                                           "seeds": seeds, "metric": metric})
        params = {key: _check_range(key, rng, resolved, base) for key, rng in self.params.items()}
        resolved = resolved.model_copy(update={"params": params})
        if self.device != "auto":
            try:
                base.with_overrides({"training.device": self.device})
            except LegoError as exc:
                _fail("device", str(exc))
        if self.sampler == "grid":
            size = math.prod(len(d.values) for d in resolved.dimensions())
            if size > MAX_GRID:
                _fail("sampler", f"the grid has {size:,} points (more than {MAX_GRID:,}); try fewer values or "
                      "the random or tpe sampler")
        return resolved

    def _slot(self, kind: str, base: Recipe) -> list[str]:
        from lego_core.bricks.catalog import catalog

        chosen = self.slots.get(kind)
        if chosen is None:
            return [getattr(base, kind).name]
        if chosen == "all":
            return list(catalog(kind))
        if not chosen:
            _fail(f"slots.{kind}", "list at least one brick, or write `all`")
        for name in chosen:
            try:
                get_brick(name, kind)
            except LegoError as exc:
                _fail(f"slots.{kind}", str(exc))
        if len(set(chosen)) != len(chosen):
            _fail(f"slots.{kind}", "lists a brick twice")
        return list(chosen)

    # ---- what the sweep searches --------------------------------------------------------------
    @property
    def base_recipe(self) -> Recipe:
        return Recipe.load(self.base)

    @property
    def seed_list(self) -> list[int]:
        return list(self.seeds) if isinstance(self.seeds, list) else [int(self.seeds)]

    def dimensions(self) -> list["Dimension"]:
        """The search space: the three slots, then each parameter (brick parameters apply only
        while their brick is in its slot). Ranges carry the values a grid takes."""
        dims = [Dimension(kind, "categorical", tuple(self.slots[kind])) for kind in KINDS]
        for key, rng in self.params.items():
            parts = key.split(".")
            slot, brick = (parts[0], parts[1]) if parts[0] in KINDS else (None, None)
            if rng.values is not None:
                dims.append(Dimension(key, "categorical", tuple(rng.values), slot=slot, brick=brick))
            else:
                kind = "int" if _param_type(key) == "int" else "float"
                dims.append(Dimension(key, kind, _grid_values(rng, kind), rng.low, rng.high, rng.log, rng.step,
                                      slot, brick))
        return dims


@dataclass(frozen=True)
class Dimension:
    """One axis of the search: `name` is the Optuna parameter ("content", "content.attention.heads",
    "training.lr"); `kind` is categorical, int or float; `values` are its choices (the grid's values
    for a range); `slot`/`brick`: it applies only while that brick fills that slot."""

    name: str
    kind: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    slot: str | None = None
    brick: str | None = None

    def applies(self, bricks: dict[str, str]) -> bool:
        return self.slot is None or bricks.get(self.slot) == self.brick


def _fail(where: str, message: str) -> None:
    raise SweepError(f"sweep spec: field '{where}': {message}")


def param_info(key: str) -> dict:
    """What a parameter key names: {"type", "low", "high", "choices"} from the brick catalog
    (`<slot>.<brick>.<param>`) or the recipe's training fields (`training.<field>`); SweepError
    when the key names neither."""
    from lego_core.bricks.settings import training_widgets

    where = f"params.{key}"
    parts = key.split(".")
    if len(parts) == 3 and parts[0] in KINDS:
        try:
            spec = get_brick(parts[1], parts[0])
        except LegoError as exc:
            _fail(where, str(exc))
        found = {p.name: p for p in spec.params}.get(parts[2])
        if found is None:
            _fail(where, f"brick '{parts[1]}' has no parameter '{parts[2]}'; known: {sorted(p.name for p in spec.params)}")
        kind = found.type if found.type != "choice" else "categorical"
        return {"type": kind, "low": found.low, "high": found.high, "choices": found.choices,
                "default": found.default}
    if len(parts) == 2 and parts[0] == "training":
        if parts[1] in FIXED_TRAINING:
            _fail(where, f"a sweep sets training.{parts[1]} itself: {FIXED_TRAINING[parts[1]]}")
        widgets = {w.name: w for w in training_widgets(None, names=None)}
        w = widgets.get(parts[1])
        if w is None:
            _fail(where, f"'{parts[1]}' is not a training setting a sweep can vary; choose one of {sorted(widgets)}")
        kind = {"checkbox": "bool", "select": "categorical", "text": "str"}.get(w.kind, w.kind)
        choices = tuple(c for c in w.choices if c is not None) if w.kind == "select" else None
        return {"type": kind, "low": None if w.optional else w.low, "high": w.high, "choices": choices,
                "default": w.default}
    _fail(where, "name a brick parameter as <slot>.<brick>.<param> (e.g. content.attention.heads) or a "
          "training setting as training.<field> (e.g. training.lr)")
    raise AssertionError  # unreachable


def _param_type(key: str) -> str:
    return param_info(key)["type"]


def _check_range(key: str, rng: ParamRange, spec: SweepSpec, base: Recipe) -> ParamRange:
    where = f"params.{key}"
    info = param_info(key)
    parts = key.split(".")
    if parts[0] in KINDS and parts[1] not in spec.slots[parts[0]]:
        _fail(where, f"brick '{parts[1]}' is not in slots.{parts[0]} ({spec.slots[parts[0]]}); add it there "
              "or drop this parameter")
    kind = info["type"]
    if rng.values is None and kind in ("bool", "categorical"):
        return rng.model_copy(update={"values": list(info["choices"] or (False, True))})
    if rng.values is None and kind == "str":
        _fail(where, "is text: give a list of values, e.g. ['128,64', '256']")
    if rng.values is not None:
        if not rng.values:
            _fail(where, "give at least one value")
        values = [_check_value(key, v, base) for v in rng.values]
        if len({repr(v) for v in values}) != len(values):
            _fail(where, "lists a value twice")
        return rng.model_copy(update={"values": values})
    low = info["low"] if rng.low is None else rng.low
    high = info["high"] if rng.high is None else rng.high
    if low is None or high is None:
        _fail(where, "has no catalog bound on this side; give low and high, e.g. {low: 0.0001, high: 0.01, log: true}")
    if info["low"] is not None and low < info["low"] or info["high"] is not None and high > info["high"]:
        _fail(where, f"range [{low}, {high}] leaves the allowed range [{info['low']}, {info['high']}]")
    if not low < high:
        _fail(where, f"low ({low}) must be below high ({high}); for one value write [{low}]")
    if rng.log and low <= 0:
        _fail(where, f"a log range needs low > 0 (got {low})")
    if rng.log and rng.step is not None:
        _fail(where, "give either log or step, not both")
    if kind == "int":
        if low != int(low) or high != int(high) or (rng.step is not None and rng.step != int(rng.step)):
            _fail(where, f"is a whole number: give whole low, high and step (got {low}, {high})")
        low, high = int(low), int(high)
    for v in (low, high):
        _check_value(key, v, base)
    return rng.model_copy(update={"low": low, "high": high})


def _check_value(key: str, value: Any, base: Recipe) -> Any:
    """A value checked as the catalog or the recipe checks it (coerced: "4" for an int is 4)."""
    parts = key.split(".")
    try:
        if parts[0] in KINDS:
            return {p.name: p for p in get_brick(parts[1], parts[0]).params}[parts[2]].check(value, parts[1])
        recipe = base.with_overrides({key: value})
        return getattr(recipe.training, parts[1])
    except LegoError as exc:
        _fail(f"params.{key}", str(exc))


def _grid_values(rng: ParamRange, kind: str) -> tuple:
    """`points` values from low to high (log-spaced on request; on the step grid when given)."""
    low, high, n = float(rng.low), float(rng.high), rng.points
    if rng.log:
        raw = [math.exp(math.log(low) + (math.log(high) - math.log(low)) * i / (n - 1)) for i in range(n)]
    else:
        raw = [low + (high - low) * i / (n - 1) for i in range(n)]
    if rng.step:
        raw = [min(high, low + round((v - low) / rng.step) * rng.step) for v in raw]
    if kind == "int":
        out = [int(round(v)) for v in raw]
    else:
        out = [float(f"{v:.6g}") for v in raw]
    return tuple(dict.fromkeys(out))
