"""What the Builder's Sweep mode edits, as data: the parameters a sweep can vary for the chosen
bricks (described as range sliders or choice lists, bounds from the brick catalog and the recipe's
training fields), the spec the form stands for, and an estimate of the sweep's time from earlier
runs of the same bricks on this machine. The page only renders these."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

from lego_core.bricks.settings import Widget, param_widgets, training_widgets
from lego_core.bricks.catalog import KINDS
from lego_core.bricks.recipe import Recipe
from lego_core.sweeps.spec import SweepSpec
from lego_core.sweeps.study import plan

# Training settings the form offers to vary (the spec accepts more, see spec.param_info).
TRAINING_KEYS = ("lr", "dim", "negatives", "batch_size", "weight_decay", "max_history", "max_length", "epochs",
                 "item_id", "item_id_dropout", "glove")
LOG_STEPS = (0.0, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
GUESS_SECONDS_PER_EPOCH = 60.0  # no earlier run to go by: a CPU epoch of a small model on ml-100k
GUESS_SECONDS_PER_STEP = 0.25
GUESS_START_SECONDS = 10.0  # a run's process start, data loading and final evaluation


@dataclass(frozen=True)
class RangeWidget:
    """One parameter a sweep can vary. `kind`: "int" or "float" (a range slider from `low` to
    `high`, `step`), "steps" (a range slider over the values in `options`, for log-scaled floats) or
    "choices" (a multiselect of `options`). `default` is the widget's initial value."""

    key: str  # the spec's parameter key, e.g. "content.attention.heads" or "training.lr"
    label: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    options: tuple = ()
    help: str = ""


def _range_widget(key: str, label: str, w: Widget) -> RangeWidget | None:
    if w.kind in ("select", "checkbox"):
        options = tuple(c for c in w.choices if c is not None) if w.kind == "select" else (False, True)
        return RangeWidget(key, label, "choices", [w.default] if w.default in options else list(options[:1]),
                           options=options, help=w.help)
    if w.kind == "int" and w.low is not None and w.high is not None and not w.optional:
        low, high, d = int(w.low), int(w.high), int(w.default)
        return RangeWidget(key, label, "int", (max(low, d // 2), min(high, max(d * 2, d + 1))), low, high, 1,
                           help=w.help)
    if w.kind == "float" and w.log_step:
        options = tuple(v for v in LOG_STEPS if (w.low is None or v >= w.low) and (w.high is None or v <= w.high)
                        and (w.low is not None or v > 0))
        near = min(options, key=lambda v: abs(math.log10(max(v, 1e-9)) - math.log10(max(w.default, 1e-9))))
        i = options.index(near)
        return RangeWidget(key, label, "steps", (options[max(0, i - 1)], options[min(len(options) - 1, i + 1)]),
                           options=options, help=w.help)
    if w.kind == "float" and w.low is not None and w.high is not None:
        return RangeWidget(key, label, "float", (float(w.low), float(w.high)), float(w.low), float(w.high), 0.05,
                           help=w.help)
    return None


def sweepable(slots: dict[str, list[str]]) -> list[RangeWidget]:
    """The parameters of the bricks chosen per slot, then the training settings, as range widgets."""
    out = []
    for kind in KINDS:
        for brick in slots.get(kind) or []:
            for w in param_widgets(kind, brick):
                found = _range_widget(f"{kind}.{brick}.{w.name}", f"{brick} ({kind}) · {w.label}", w)
                if found is not None:
                    out.append(found)
    for w in training_widgets(None, names=TRAINING_KEYS):
        found = _range_widget(f"training.{w.name}", f"training · {w.label}", w)
        if found is not None:
            out.append(found)
    return out


def param_entry(widget: RangeWidget, value: Any, points: int = 3) -> Any:
    """The spec's entry for what a widget returned: a list of choices, or a range (one value when
    both ends meet)."""
    if widget.kind == "choices":
        return list(value)
    low, high = value
    if low == high:
        return [low]
    entry = {"low": low, "high": high, "points": points}
    if widget.kind == "steps" and low > 0:
        entry["log"] = True
    return entry


def spec_from_form(recipe: Recipe, slots: dict[str, list[str]], params: dict[str, Any], seeds: int, trials: int,
                   minutes: float | None, sampler: str, pruner: str, metric: str | None = None,
                   name: str = "sweep", device: str = "auto") -> SweepSpec:
    """The validated spec the Sweep form stands for (SweepError in one line when it cannot be)."""
    return SweepSpec.load({"name": name, "base": recipe.model_dump(mode="json"), "slots": slots,
                           "params": params, "seeds": int(seeds), "budget": {"trials": int(trials),
                                                                             "minutes": minutes or None},
                           "metric": metric, "sampler": sampler, "pruner": pruner, "device": device})


def estimate(spec: SweepSpec, earlier: Iterable[Any] = (), slots: int = 2) -> dict:
    """{"trials", "configurations", "seeds", "space", "seconds", "per_trial", "basis"}: the plan
    and its wall time. A trial takes a start-up time (process, data) plus its epochs: both the
    median of earlier successful runs of the same content bricks on the same dataset here (else of
    any run on it, else a rough guess), over `slots` runs at once."""
    counted = plan(spec)
    base = spec.base_recipe
    epochs, cap = base.training.epochs, base.training.max_steps_per_epoch
    same: list[tuple[float, float]] = []
    any_brick: list[tuple[float, float]] = []
    for run in earlier:
        try:
            if run.state != "succeeded":
                continue
            recipe, metrics, status = run.recipe(), run.metrics(), run.status()
            done = len(run.history("epochs")) or recipe.training.epochs
            train = float(metrics["train_seconds"])
            total = float(status["ended"]) - float(status["started"])
        except Exception:  # noqa: BLE001 - a damaged or foreground run tells nothing about speed
            continue
        if recipe.dataset.name != base.dataset.name or recipe.training.max_steps_per_epoch != cap:
            continue
        sample = (train / max(done, 1), max(0.0, total - train))
        any_brick.append(sample)
        if recipe.content.name in spec.slots["content"]:
            same.append(sample)
    found = same or any_brick
    if found:
        per_epoch = statistics.median(s[0] for s in found)
        start = statistics.median(s[1] for s in found)
        basis = f"{len(found)} earlier run(s) of {'these content bricks' if same else 'other bricks'} here"
    else:
        per_epoch = GUESS_SECONDS_PER_EPOCH if cap is None else GUESS_SECONDS_PER_STEP * cap + 5
        start, basis = GUESS_START_SECONDS, "a rough guess (no earlier run on this dataset here)"
    per_trial = start + per_epoch * epochs
    seconds = per_trial * counted["trials"] / max(1, min(slots, counted["trials"] or 1))
    return {**counted, "seconds": seconds, "per_trial": per_trial, "basis": basis}


def human_seconds(seconds: float) -> str:
    """3725 -> '1 h 2 min'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60} min"
