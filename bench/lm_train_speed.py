"""Joint training steps of the language-model bricks: the exact path against the history cache.

Times `Trainer.train_step` (the loop that ships) for PLM-NR (MiniLM, top 2 layers tuned) and ONCE
(SmolLM2, LoRA on the top 2 layers) on MovieLens-100k, batch 64, 4 negatives, 50-click histories,
both paths in the same process. The cached path's figure includes its table refreshes, amortised
over `training.history_refresh` steps. `--profile` prints where the time goes (torch.profiler,
top operators by self CPU time) for each path. `--quality N` also trains each path N steps from
the same start and reports valid AUC (MovieLens-100k and MIND-format synthetic data).

    .venv/bin/python bench/lm_train_speed.py [--presets plmnr once] [--steps 5] [--profile] [--quality 60]
"""
from __future__ import annotations

import argparse

from common import machine

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


def step_seconds(trainer: Trainer, steps: int, warmup: int = 1) -> float:
    """Mean seconds per step after `warmup` steps, a cached trainer's table refresh amortised."""
    timing = step_timing(trainer, steps, warmup)
    if timing["refresh"] is not None:
        print(f"    table refresh {timing['refresh']:.2f} s every {trainer.history.every} steps")
    return timing["per_step"]


def print_profile(trainer: Trainer, label: str, steps: int = 2) -> None:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in training_batches(trainer, steps, 50):
            trainer.train_step(batch)
    print(f"--- {label}: top operators by self CPU time over {steps} steps")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))


def valid_auc_after(preset: str, dataset, cached: bool, steps: int, refresh: str = "auto") -> float:
    extra = {"training.seed": 7, "training.history_refresh": None if refresh == "auto" else int(refresh)}
    if "genres" not in dataset.items.columns:  # the presets' template names MovieLens' fields
        extra["training.template"] = "Title: {title}. Category: {category}."
    trainer = trainer_for(preset, dataset, cached, **extra)
    for batch in training_batches(trainer, steps):
        trainer.train_step(batch)
    return ev.evaluate(trainer.model, trainer.dataset, "valid", batch_size=256)["auc"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", nargs="+", default=["plmnr", "once"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per path")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--quality", type=int, default=0, help="steps trained per path for the valid AUC check")
    parser.add_argument("--refresh", nargs="+", default=["auto"],
                        help="history_refresh values of the valid AUC check (auto: the default)")
    parser.add_argument("--timing", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    dataset = datasets.load("ml-100k")
    print(f"machine: {machine()}")
    print(f"MovieLens-100k, batch 64, K=4, history 50; {args.steps} timed steps per path")
    rows = []
    paths = {"before": (False, True), "exact": (False, False), "cached": (True, False)}
    for preset in args.presets if args.timing else []:
        timings = {}
        for label, (cached, baseline) in paths.items():
            trainer = trainer_for(preset, dataset, cached, baseline)
            if args.profile:
                print_profile(trainer, f"{preset} {label}")
            timings[label] = step_seconds(trainer, args.steps)
            print(f"  {preset:14s} {label:8s} {timings[label]:7.3f} s/step", flush=True)
            del trainer
        rows.append((preset, timings))
    if rows:
        print("\nbefore: exact path, float32, one padded batch (as shipped before); exact: length groups + bf16 "
              "where the CPU has it; cached: exact + history cache")
        print("preset          before s/step  exact s/step  cached s/step  cache speed-up  total speed-up")
    for preset, t in rows:
        print(f"{preset:14s} {t['before']:13.3f} {t['exact']:13.3f} {t['cached']:14.3f} "
              f"{t['exact'] / t['cached']:14.1f}x {t['before'] / t['cached']:14.1f}x")
    if args.quality:
        quality(args, dataset)


def quality(args, dataset) -> None:
    """Valid AUC after the same steps from the same start: exact against the cache per refresh interval."""
    synthetic = datasets.load("synthetic", n_items=2000, n_users=800, n_impressions=1500, seed=1)
    print(f"\nvalid AUC after {args.quality} steps from the same start (seed 7)")
    print("preset          dataset     refresh    exact    cached    delta")
    for preset in args.presets:
        for name, data in (("ml-100k", dataset), ("synthetic", synthetic)):
            exact = valid_auc_after(preset, data, False, args.quality)
            for refresh in args.refresh:
                cached = valid_auc_after(preset, data, True, args.quality, refresh)
                print(f"{preset:14s} {name:10s} {refresh:>8s} {exact:8.4f} {cached:9.4f} {cached - exact:+8.4f}",
                      flush=True)

if __name__ == "__main__":
    main()
