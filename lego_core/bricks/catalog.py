"""The brick registry: name -> class + the metadata the app renders as forms and the recipe
validates against. Bricks register themselves with `@register(...)` in their own module; the
`catalog()` call imports every operator module once so the registry is complete."""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

from lego_core.core.errors import RecipeError

KINDS = ("content", "behavior", "predictor")


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: `type` is "int", "float", "bool", "str" or "choice"."""

    name: str
    type: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    help: str = ""

    def check(self, value: Any, brick: str) -> Any:
        """Coerce and range-check `value`; raise RecipeError naming brick, param and range."""
        where = f"{brick}.{self.name}"
        try:
            if self.type == "int":
                if isinstance(value, bool) or float(value) != int(float(value)):
                    raise ValueError
                value = int(float(value))
            elif self.type == "float":
                value = float(value)
            elif self.type == "bool":
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    value = value.lower() in ("true", "1", "yes")
                else:
                    value = bool(value)
            elif self.type in ("str", "choice"):
                value = value if isinstance(value, (list, tuple)) else str(value)
        except (TypeError, ValueError):
            raise RecipeError(f"{where} must be of type {self.type}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise RecipeError(f"{where} must be one of {list(self.choices)}, got {value!r}")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise RecipeError(f"{where} must be in [{self.low}, {self.high}], got {value!r}")
        return value

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class BrickSpec:
    name: str
    kind: str  # content | behavior | predictor
    cls: type
    description: str
    paper: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    needs: tuple[str, ...] = ()  # e.g. ("word_tokens",), ("user_interests",), ("history",)
    provides: tuple[str, ...] = ()  # e.g. ("item_vector",), ("user_vector",), ("scores",)
    losses: tuple[str, ...] = ()  # predictors only

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def validate(self, params: dict | None) -> dict:
        """Full parameter dict: defaults overridden by `params`, each checked."""
        params = dict(params or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise RecipeError(f"brick '{self.name}' has no parameter {unknown[0]!r}; "
                              f"known: {sorted(known) or 'none'}")
        return {name: p.check(params.get(name, p.default), self.name) for name, p in known.items()}

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "description": self.description, "paper": self.paper,
                "params": [p.to_dict() for p in self.params], "needs": list(self.needs),
                "provides": list(self.provides), "losses": list(self.losses)}


_REGISTRY: dict[tuple[str, str], BrickSpec] = {}  # (kind, name): names are unique per kind
_LOADED = False


def register(name: str, kind: str, description: str, paper: str, params: list[Param] | tuple = ()):
    """Class decorator adding a brick to the registry; needs/provides come from the class."""
    if kind not in KINDS:
        raise ValueError(f"unknown brick kind {kind}")

    def wrap(cls):
        if kind == "content":
            needs, provides, losses = (cls.input_kind,), ("item_vector",), ()
        elif kind == "behavior":
            needs, provides, losses = ("item_vector",), (cls.provides,), ()
        else:
            needs = (cls.needs,) + (("history",) if cls.needs_history else ())
            provides, losses = ("scores",), tuple(cls.losses)
        _REGISTRY[(kind, name)] = BrickSpec(name, kind, cls, description, paper, tuple(params), needs, provides, losses)
        cls.brick_name = name
        return cls

    return wrap


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for sub in ("content", "behavior", "predictors"):
        pkg = importlib.import_module(f"lego_core.bricks.{sub}")
        for mod in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{pkg.__name__}.{mod.name}")
    _LOADED = True


def catalog(kind: str | None = None) -> dict[str, BrickSpec]:
    """The registered bricks of one kind by name; with kind=None all of them keyed "kind/name"
    (a content and a behaviour brick may share a name, e.g. `pooling`)."""
    _load_all()
    if kind is None:
        return {f"{k}/{n}": s for (k, n), s in _REGISTRY.items()}
    return {n: s for (k, n), s in _REGISTRY.items() if k == kind}


def get(name: str, kind: str | None = None) -> BrickSpec:
    """The spec of brick `name`; RecipeError listing the valid names when unknown."""
    if kind is None:
        found = [s for s in catalog().values() if s.name == name]
        if len(found) == 1:
            return found[0]
        if found:
            raise RecipeError(f"'{name}' is a {' and a '.join(s.kind for s in found)} brick; say which kind")
        names = sorted({s.name for s in catalog().values()})
        raise RecipeError(f"unknown brick '{name}'; choose one of: {', '.join(names)}")
    specs = catalog(kind)
    if name not in specs:
        raise RecipeError(f"unknown {kind} '{name}'; choose one of: {', '.join(sorted(specs))}")
    return specs[name]


def compatible(content: str, behavior: str, predictor: str) -> str | None:
    """None when the three bricks fit together, else a one-line reason."""
    b, p = get(behavior, "behavior"), get(predictor, "predictor")
    get(content, "content")
    if b.provides[0] != p.needs[0]:
        what = {"user_vector": "one user vector", "user_interests": "several interest vectors"}
        return (f"behaviour '{behavior}' gives {what[b.provides[0]]} but predictor '{predictor}' needs "
                f"{what[p.needs[0]]}; pick a matching pair (e.g. 'poly' with 'miner')")
    return None
