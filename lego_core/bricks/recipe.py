"""Recipe: dataset + three bricks + their parameters + training settings, as YAML.

A recipe is validated before anything runs (unknown brick, impossible combination, out-of-range
value), so the CLI, the job launcher and the app all refuse a bad one with the same one-line error.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lego_core.core import devices
from lego_core.core import metric_names
from lego_core.core.errors import LegoError, RecipeError
from lego_core.core.paths import PROJECT_ROOT
from lego_core.bricks.catalog import compatible, get as get_brick

RECIPES_DIR = PROJECT_ROOT / "recipes"
if not RECIPES_DIR.is_dir():  # pip-installed (pyproject.toml): the presets were installed as data files
    RECIPES_DIR = Path(sys.prefix) / "share" / "lego_core" / "recipes"
_VALID: dict[str, None] = {}  # contents of recipes that passed validate() (a pure check), oldest first
VALIDATION_METRICS = metric_names.DEFAULT_METRICS  # selectable as training.metric: the reported metrics


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetChoice(_Strict):
    name: str = "ml-100k"
    options: dict[str, Any] = Field(default_factory=dict)


class BrickChoice(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Training(_Strict):
    dim: int = Field(64, ge=4, le=4096, description="model width D")
    negatives: int = Field(4, ge=1, le=200, description="sampled negatives K per clicked item")
    batch_size: int = Field(64, ge=1, le=8192)
    lr: float = Field(1e-3, gt=0, le=1, description="learning rate of the randomly initialised parts")
    lr_pretrained: float = Field(1e-4, gt=0, le=1, description="learning rate of pretrained parts")
    weight_decay: float = Field(0.0, ge=0, le=1)
    epochs: int = Field(5, ge=1, le=1000)
    patience: int = Field(2, ge=0, le=1000, description="epochs without improvement before stopping")
    metric: str = Field("auc", description="validation metric for early stopping and the best checkpoint")
    seed: int = Field(2023, ge=0)
    device: str = Field("auto", pattern=devices.PATTERN)
    amp: bool = Field(True, description="mixed precision on CUDA (ignored elsewhere)")
    max_history: int = Field(50, ge=1, le=1000, description="most recent clicks fed to the behaviour brick")
    max_length: int = Field(30, ge=1, le=512, description="tokens per item text")
    fields: list[str] = Field(default_factory=list, description="item fields forming the text (default: dataset's)")
    template: str | None = Field(None, description="item text template, e.g. 'Title: {title}. Genre: {genres}.'")
    glove: bool = Field(True, description="start word embeddings from GloVe 6B 50d")
    loss: str | None = Field(None, description="softmax or bce (default: the predictor's)")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap on steps per epoch (quick runs)")
    item_id: Literal["off", "add", "gate"] = Field("off", description="hybrid item vectors: off, add (content + learned ID "
                         "vector) or gate; cold items use content only")
    item_id_dropout: float = Field(0.2, ge=0, le=0.9, description="share of ID vectors dropped in training, "
                                   "so the model learns to score from content alone")
    history_cache: bool = Field(False, description="faster joint training of language-model bricks: a clicked "
                                "item's language-model output is read from a table while it is at most "
                                "history_max_age steps old instead of being encoded again (the projection still "
                                "trains on it; the language model does not); trades a little accuracy for speed "
                                "(docs/results.md, History cache)")
    history_max_age: int = Field(5, ge=0, le=1_000_000, description="with the history cache: steps a row of the "
                                 "table is used before a history read re-encodes it (0: every step)")
    @model_validator(mode="before")
    @classmethod
    def _read_old_cache_settings(cls, data: Any) -> Any:
        """Recipes written before the cache had expiry: `history_refresh` (steps between refreshes of
        the whole table) bounded staleness as `history_max_age` does now; `history_cache: null` was
        the default."""
        if isinstance(data, dict) and ("history_refresh" in data or data.get("history_cache", False) is None):
            data = dict(data)
            refresh = data.pop("history_refresh", None)
            if refresh is not None and "history_max_age" not in data:
                data["history_max_age"] = refresh
            if data.get("history_cache", False) is None:
                data.pop("history_cache")
        return data

    eval_batch_size: int = Field(512, ge=1, le=65536)
    log_every: int = Field(10, ge=1)
    loggers: list[Literal["jsonl", "tensorboard", "mlflow"]] = Field(
        default_factory=list, description="experiment trackers the run also reports to: tensorboard (event files "
        "in the run folder), mlflow ($MLFLOW_TRACKING_URI); jsonl (steps/epochs.jsonl) is always written")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in VALIDATION_METRICS:
            raise ValueError(f"must be one of {list(VALIDATION_METRICS)}")
        return value

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str | None) -> str | None:
        if value not in (None, "softmax", "bce"):
            raise ValueError("must be 'softmax' or 'bce'")
        return value


class Recipe(_Strict):
    name: str = "custom"
    dataset: DatasetChoice = Field(default_factory=DatasetChoice)
    content: BrickChoice
    behavior: BrickChoice
    predictor: BrickChoice
    training: Training = Field(default_factory=Training)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "recipe") -> "Recipe":
        if not isinstance(data, dict):
            raise RecipeError(f"{source}: a recipe must be a YAML mapping with content, behavior and predictor")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "recipe"
            got = f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err["input"], dict) else ""
            raise RecipeError(f"{source}: field '{where}': {err['msg']}{got}") from None

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> "Recipe":
        """Parse YAML text or a file path (validated structurally; call validate() for bricks)."""
        source, _, data = read_yaml(text_or_path)
        return cls.from_dict(data, source)

    @classmethod
    def preset(cls, name: str) -> "Recipe":
        """A preset from recipes/ by name (e.g. 'nrms')."""
        path = RECIPES_DIR / f"{name.lower()}.yaml"
        if not path.is_file():
            raise RecipeError(f"unknown preset '{name}'; choose one of: {', '.join(presets())}")
        return cls.from_yaml(path)

    @classmethod
    def load(cls, spec: Any, overrides: dict[str, Any] | list[str] | None = None) -> "Recipe":
        """The one loader at the edges (CLI, jobs, app): a Recipe, a mapping, YAML text, a .yaml
        path or a preset name, with dotted overrides applied, validated."""
        if isinstance(spec, Recipe):
            loaded = spec
        elif isinstance(spec, dict):
            loaded = cls.from_dict(spec)
        elif isinstance(spec, (str, Path)):
            text = str(spec)
            is_name = (isinstance(spec, str) and "\n" not in text and ":" not in text
                       and not text.endswith((".yaml", ".yml")) and not Path(text).exists())
            loaded = cls.preset(text) if is_name else cls.from_yaml(spec)
        else:
            raise RecipeError(f"a recipe must be a Recipe, a mapping, YAML text, a .yaml file or a preset name, "
                              f"not {type(spec).__name__}")
        return (loaded.with_overrides(overrides) if overrides else loaded).validate()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> "Recipe":
        """A copy with dotted keys replaced, e.g. {"training.epochs": 1} or ["training.epochs=1"]
        (string values are parsed as YAML scalars, so "1" becomes 1 and "true" True)."""
        if isinstance(overrides, (list, tuple)):
            pairs = {}
            for item in overrides:
                if "=" not in item:
                    raise RecipeError(f"override '{item}' must look like key=value, e.g. training.epochs=1")
                key, value = item.split("=", 1)
                pairs[key.strip()] = yaml.safe_load(value) if value.strip() else None
            overrides = pairs
        data = self.model_dump(mode="json")
        for key, value in overrides.items():
            node, parts = data, key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {} if part in ("params", "options") else node.get(part)
                if not isinstance(node.get(part), dict):
                    raise RecipeError(f"override '{key}': '{part}' is not a section of the recipe")
                node = node[part]
            node[parts[-1]] = value
        return Recipe.from_dict(data, "recipe overrides")

    # ---- validation ---------------------------------------------------------------------
    def validate_bricks(self) -> dict[str, dict]:
        """Check brick names, their parameters and compatibility; returns the full params."""
        full = {}
        for kind, choice in (("content", self.content), ("behavior", self.behavior), ("predictor", self.predictor)):
            full[kind] = get_brick(choice.name, kind).validate(choice.params)
        reason = compatible(self.content.name, self.behavior.name, self.predictor.name)
        if reason:
            raise RecipeError(reason)
        losses = get_brick(self.predictor.name, "predictor").losses
        if self.training.loss and self.training.loss not in losses:
            raise RecipeError(f"predictor '{self.predictor.name}' supports losses {list(losses)}, "
                              f"not '{self.training.loss}'; set training.loss to one of them")
        return full

    def validate(self) -> "Recipe":  # type: ignore[override]
        """Raise RecipeError on any problem; return self for chaining. A recipe that passed and is
        unchanged since is not checked again (a launch hands one recipe through several steps)."""
        key = self.model_dump_json()
        if key in _VALID:
            return self
        full = self.validate_bricks()
        self._dry_build(full)
        _VALID[key] = None
        while len(_VALID) > 256:
            _VALID.pop(next(iter(_VALID)))
        return self

    def _dry_build(self, params: dict[str, dict]) -> None:
        """Build the non-LM bricks for a 4-item, 4-word stand-in dataset (kilobytes, no data), so
        parameters that contradict each other (attention heads that do not divide training.dim, bad
        layer lists) are refused when the recipe is checked, not minutes later in a background
        process. On the CPU, not the meta device: a first meta-device init imports torch._dynamo
        (1.7 s of the Builder's first render). LM bricks are skipped: checking them means loading
        their model."""
        import torch

        from lego_core.bricks.base import LM_TOKENS, BuildContext

        t = self.training
        ctx = BuildContext(dim=t.dim, num_items=4, num_users=4, vocab_size=4, max_history=t.max_history)
        for kind, choice in (("content", self.content), ("behavior", self.behavior), ("predictor", self.predictor)):
            cls = get_brick(choice.name, kind).cls
            if getattr(cls, "input_kind", None) == LM_TOKENS:
                continue
            try:
                with torch.device("cpu"):
                    cls(ctx, **params[kind])
            except LegoError:
                raise
            except (ValueError, TypeError, RuntimeError) as exc:
                raise RecipeError(f"{kind} '{choice.name}' cannot be built with params {choice.params} and "
                                  f"training.dim={t.dim}: {str(exc).splitlines()[0]}") from None

    def check_runnable(self) -> "Recipe":
        """Everything that can be checked before a run folder or process exists: the bricks (see
        `validate`), the dataset name and its options, and that training.device exists here."""
        from lego_core.data import datasets

        self.validate()
        datasets.check(self.dataset.name, self.dataset.options)
        devices.resolve(self.training.device)
        return self

    @property
    def loss(self) -> str:
        return self.training.loss or get_brick(self.predictor.name, "predictor").losses[0]

    def summary(self) -> str:
        return f"{self.content.name} + {self.behavior.name} + {self.predictor.name} on {self.dataset.name}"


def read_yaml(spec: Any) -> tuple[str, str, Any]:
    """(source name, YAML text, parsed data) of a recipe given as a Recipe, a mapping, YAML text or a
    .yaml path: the one place recipe files are read (RecipeError naming the file and the fix)."""
    source = "recipe"
    if isinstance(spec, Recipe):
        text = spec.to_yaml()
    elif hasattr(spec, "to_yaml"):
        text = spec.to_yaml()
    elif isinstance(spec, dict):
        text = yaml.safe_dump(spec, sort_keys=False)
    elif isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and spec.endswith((".yaml", ".yml"))):
        path = Path(spec)
        if not path.is_file():
            raise RecipeError(f"recipe file {path} not found; give a path to a .yaml recipe or a preset name")
        try:
            source, text = str(path), path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RecipeError(f"{path} is not UTF-8 text; save the recipe as UTF-8 YAML") from None
        except OSError as exc:
            raise RecipeError(f"recipe file {path} cannot be read ({exc.strerror}); check the path") from None
    elif isinstance(spec, str):
        text = spec
    else:
        raise RecipeError(f"a recipe must be a Recipe, a mapping, YAML text or a .yaml file, not {type(spec).__name__}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return source, text, data


def presets() -> list[str]:
    """Names of the recipes shipped in recipes/."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
