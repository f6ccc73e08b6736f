"""Joint training steps of the language-model bricks: the exact path against the history cache.

Times `Trainer.train_step` (the loop that ships) for PLM-NR (MiniLM, top 2 layers tuned) and ONCE
(SmolLM2, LoRA on the top 2 layers) on MovieLens-100k, batch 64, 4 negatives, 50-click histories,
all paths in the same process. The cached path is timed after `--warmup` steps, once its table
holds the rows a step reads, and prints how many history rows a step re-encoded (rows older than
`training.history_max_age`). `--profile` prints where the time goes (torch.profiler, top operators
by self CPU time). `--quality 60 300` trains each path that many steps from the same start, per
seed (`--exact-first N`: the cached path's first N steps on the exact path), and reports valid
and test AUC of exact and cached (mean and spread over the seeds) on MovieLens-100k, MIND-format
synthetic data and MovieLens-100k written as a MIND folder (`ml-100k-mind`, bench/ml100k_as_mind.py).

    .venv/bin/python bench/lm_train_speed.py [--presets plmnr once] [--steps 5] [--profile]
    .venv/bin/python bench/lm_train_speed.py --presets plmnr --timing-on synthetic --max-age 1 2 5
    .venv/bin/python bench/lm_train_speed.py --no-timing --presets plmnr --quality 60 --seeds 1 2 3
"""
from __future__ import annotations

import argparse
import tempfile

import ml100k_as_mind
from common import machine

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from lego_core.data import datasets
from lego_core.evaluation import evaluate as ev
from lego_core.training.epoch_time import in_memory_trainer, step_timing, training_batches
from lego_core.bricks.recipe import Recipe
from lego_core.training.train import Trainer

SETTINGS = {"training.batch_size": 64, "training.negatives": 4, "training.max_history": 50,
            "training.device": "cpu"}


def trainer_for(preset: str, dataset, cached: bool, baseline: bool = False, **extra) -> Trainer:
    """A trainer of `preset`; `baseline` is the step as it shipped before this bench's savings:
    exact path, float32, every text padded to the batch's longest."""
    overrides = {**SETTINGS, "training.history_cache": cached, **extra}
    if baseline:
        overrides["training.amp"] = False
    trainer = in_memory_trainer(Recipe.preset(preset).with_overrides(overrides), dataset)
    if baseline:
        trainer.model.content.length_groups = lambda ids, *_, **__: [torch.arange(len(ids), device=ids.device)]
    return trainer


def step_seconds(trainer: Trainer, steps: int, warmup: int) -> float:
    """Mean seconds per step after `warmup` steps; a cached trainer also prints its re-encoded rows."""
    timing = step_timing(trainer, steps, warmup)
    if timing["reencoded"] is not None:
        print(f"    history rows re-encoded per step: {timing['reencoded']:.0f} "
              f"(max age {trainer.history.max_age} steps)")
    return timing["per_step"]


def print_profile(trainer: Trainer, label: str, steps: int = 2) -> None:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in training_batches(trainer, steps, 50):
            trainer.train_step(batch)
    print(f"--- {label}: top operators by self CPU time over {steps} steps")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))


def auc_after(preset: str, dataset, cached: bool, steps: int, seed: int, max_age: int | None,
              exact_first: int = 0) -> dict:
    """{"valid", "test"} AUC after `steps` training steps from the start of `seed`; with the cache,
    the first `exact_first` of them on the exact path (a warm-up: the table starts from trained weights)."""
    extra = {"training.seed": seed}
    if max_age is not None:
        extra["training.history_max_age"] = max_age
    trainer = trainer_for(preset, dataset, cached, **extra, **template_for(dataset))
    table = trainer.history
    for step, batch in enumerate(training_batches(trainer, steps)):
        trainer.history = None if step < exact_first else table
        trainer.train_step(batch)
    return {split: ev.evaluate(trainer.model, trainer.dataset, split, batch_size=256)["auc"]
            for split in ("valid", "test")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", nargs="+", default=["plmnr", "once"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per path")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (the cache fills)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--quality", type=int, nargs="*", default=[],
                        help="steps trained per path for the AUC check (several: one row each)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--max-age", type=int, nargs="+", default=[None],
                        help="training.history_max_age values of the cached path (default: the recipe's)")
    parser.add_argument("--exact-first", type=int, default=0,
                        help="AUC check: the cached path's first steps on the exact path (a warm-up)")
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "synthetic"],
                        choices=["ml-100k", "synthetic", "ml-100k-mind"])
    parser.add_argument("--timing", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--timing-on", default="ml-100k", choices=["ml-100k", "synthetic", "ml-100k-mind"],
                        help="the dataset the steps are timed on (the cached path at each --max-age)")
    args = parser.parse_args()
    movielens = datasets.load("ml-100k")
    dataset = load(args.timing_on, movielens)
    print(f"machine: {machine()}")
    print(f"{args.timing_on}, batch 64, K=4, history 50; {args.steps} timed steps per path")
    rows = []
    paths = {"before": (False, True, None), "exact": (False, False, None),
             **{"cached" if age is None else f"cached, max age {age}": (True, False, age) for age in args.max_age}}
    for preset in args.presets if args.timing else []:
        timings = {}
        for label, (cached, baseline, age) in paths.items():
            extra = {**template_for(dataset), **({} if age is None else {"training.history_max_age": age})}
            trainer = trainer_for(preset, dataset, cached, baseline, **extra)
            if args.profile:
                print_profile(trainer, f"{preset} {label}")
            timings[label] = step_seconds(trainer, args.steps, args.warmup if cached else 1)
            print(f"  {preset:14s} {label:8s} {timings[label]:7.3f} s/step", flush=True)
            del trainer
        rows.append((preset, timings))
    if rows:
        print("\nbefore: exact path, float32, one padded batch (as shipped before); exact: length groups + bf16 "
              "where the CPU has it; cached: exact + history cache")
        print("preset   cached path          before s/step  exact s/step  cached s/step  cache speed-up  total")
    for preset, t in rows:
        for label in [k for k in t if k.startswith("cached")]:
            print(f"{preset:8s} {label:20s} {t['before']:13.3f} {t['exact']:13.3f} {t[label]:14.3f} "
                  f"{t['exact'] / t[label]:14.2f}x {t['before'] / t[label]:14.1f}x")
    if args.quality:
        quality(args, movielens)


def load(name: str, movielens):
    """One of the bench's datasets by name (MovieLens-100k passed in, loaded once)."""
    if name == "ml-100k":
        return movielens
    if name == "synthetic":
        return datasets.load("synthetic", n_items=2000, n_users=800, n_impressions=1500, seed=1)
    return datasets.load(ml100k_as_mind.write(tempfile.mkdtemp(prefix="ml100k-mind-")))


def template_for(dataset) -> dict:
    """The presets' template names MovieLens' fields; MIND-format items have a title and a category."""
    return {} if "genres" in dataset.items.columns else {"training.template": "Title: {title}. Category: {category}."}


def quality(args, movielens) -> None:
    """AUC after the same steps from the same start, per seed: exact against cached per max age."""
    print(f"\nAUC after N steps from the same start; seeds {args.seeds}; mean (min..max) over seeds"
          + (f"; the cached path's first {args.exact_first} steps exact" if args.exact_first else ""))
    print("preset   dataset    steps  max age  split   exact                  cached                 delta (min..max)")
    for preset in args.presets:
        for name in args.datasets:
            dataset = load(name, movielens)
            for steps in args.quality:
                exact = [auc_after(preset, dataset, False, steps, seed, None) for seed in args.seeds]
                for age in args.max_age:
                    cached = [auc_after(preset, dataset, True, steps, seed, age, args.exact_first)
                              for seed in args.seeds]
                    for split in ("valid", "test"):
                        e = np.array([r[split] for r in exact])
                        c = np.array([r[split] for r in cached])
                        d = c - e
                        print(f"{preset:8s} {name:10s} {steps:5d} {'default' if age is None else str(age):>8s}  {split:5s}  "
                              f"{e.mean():.4f} ({e.min():.4f}..{e.max():.4f})  {c.mean():.4f} ({c.min():.4f}.."
                              f"{c.max():.4f})  {d.mean():+.4f} ({d.min():+.4f}..{d.max():+.4f})", flush=True)


if __name__ == "__main__":
    main()
