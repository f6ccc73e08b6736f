"""How long one training epoch of a recipe will take here, shown before launching (Builder).

Two sources, best first: earlier successful runs of the same bricks on the same dataset (their
seconds per step, validation included, times this recipe's steps per epoch), else a measurement:
a few real `Trainer.train_step` calls in memory after one warm-up step (for a language-model
brick this loads the model, so the page asks first).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

from lego_core.training import history_cache
from lego_core.data.schema import Dataset
from lego_core.bricks.recipe import Recipe


def steps_per_epoch(recipe: Recipe, dataset: Dataset) -> int:
    """Optimizer steps in one epoch of `recipe` on `dataset` (one process)."""
    from lego_core.data.batches import TrainingSamples

    t = recipe.training
    samples = len(TrainingSamples(dataset, t.negatives, t.max_history))
    steps = -(-samples // t.batch_size)
    return min(steps, t.max_steps_per_epoch) if t.max_steps_per_epoch else steps


def _same_setup(a: Recipe, b: Recipe) -> bool:
    """Same bricks and dataset, and the settings that change a step's cost."""
    keys = ("batch_size", "negatives", "max_history", "max_length", "dim", "device")
    return (a.content == b.content and a.behavior.name == b.behavior.name and a.predictor.name == b.predictor.name
            and a.dataset.name == b.dataset.name and history_cache.enabled(a) == history_cache.enabled(b)
            and all(getattr(a.training, k) == getattr(b.training, k) for k in keys))


def from_runs(recipe: Recipe, earlier: Iterable[Any]) -> dict | None:
    """{"per_step", "basis"} from earlier succeeded runs of the same setup, else None."""
    per_step = []
    for run in earlier:
        try:
            if run.state != "succeeded" or not _same_setup(run.recipe(), recipe):
                continue
            done = run.history("steps")
            per_step.append(float(run.metrics()["train_seconds"]) / max(int(done[-1]["global_step"]), 1))
        except Exception:  # noqa: BLE001 - a damaged or foreign run tells nothing about speed
            continue
    if not per_step:
        return None
    return {"per_step": statistics.median(per_step), "basis": f"{len(per_step)} earlier run(s) of these bricks here"}


def in_memory_trainer(recipe: Recipe, dataset: Dataset):
    """A set-up `Trainer` in train mode that writes nothing (timings, benches)."""
    from lego_core.training.checkpoints import MemoryCheckpointer
    from lego_core.training.train import Trainer
    from lego_core.training.logs import MemoryLog

    trainer = Trainer(recipe, MemoryLog(), MemoryCheckpointer(), progress=False, dataset=dataset)
    trainer.setup()
    trainer.net.train()
    return trainer


def training_batches(trainer, count: int, first: int = 0):
    """Batches `first` .. `first + count - 1` of the trainer's run, in order, epoch after epoch as
    `train_epoch` draws them: this rank's share under torchrun (the history cache's rows expire at
    each epoch start, as there)."""
    size, per_epoch = trainer.t.batch_size, trainer.steps_per_epoch
    orders: dict[int, object] = {}
    for step in range(first, first + count):
        epoch, at = divmod(step, per_epoch)
        if epoch not in orders:
            orders[epoch] = trainer.samples.epoch_order(trainer.t.seed, epoch, trainer.dist.rank, trainer.dist.world)
            if at == 0 and step > first and trainer.history is not None:
                trainer.history.invalidate()
        yield trainer.samples.batch(orders[epoch][at * size:(at + 1) * size], trainer.t.seed, epoch, at)


def step_timing(trainer, steps: int, warmup: int = 1) -> dict:
    """{"per_step", "reencoded"}: mean seconds of `steps` training steps after `warmup`, and with the
    history cache the rows a step re-encoded for its history on average (None without it)."""
    import torch

    def sync() -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()

    for batch in training_batches(trainer, warmup):
        trainer.train_step(batch)
    sync()
    before = trainer.history.reencoded_total if trainer.history is not None else 0
    start = time.perf_counter()
    for batch in training_batches(trainer, steps, warmup):
        trainer.train_step(batch)
    sync()
    per_step = (time.perf_counter() - start) / steps
    reencoded = None if trainer.history is None else (trainer.history.reencoded_total - before) / steps
    return {"per_step": per_step, "reencoded": reencoded}


def measure(recipe: Recipe, dataset: Dataset, steps: int = 3) -> dict:
    """{"per_step", "basis"}: time `steps` training steps (after one warm-up) in memory."""
    per_step = step_timing(in_memory_trainer(recipe, dataset), steps)["per_step"]
    return {"per_step": per_step, "basis": f"{steps} steps timed here just now"}


def estimate(recipe: Recipe, earlier: Iterable[Any], steps: Callable[[], int],
             measured: Callable[[], dict] | None = None) -> dict | None:
    """{"seconds", "per_step", "steps", "basis"} of one epoch: seconds per step from earlier runs, else
    from `measured()` (a `measure`, cached by the caller) when given, else None (the caller offers to
    measure). `steps()` (e.g. `steps_per_epoch`) is called only once there is a time to multiply:
    counting MIND-large's training samples takes seconds."""
    found = from_runs(recipe, earlier)
    if found is None and measured is not None:
        found = measured()
    if found is None:
        return None
    count = steps()
    return {**found, "steps": count, "seconds": found["per_step"] * count}
