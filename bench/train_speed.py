"""Training throughput of the loop that ships (`lego_core.training.train.Trainer.train_step`, in memory):
samples per second (1 clicked + 4 negatives each) for NAML and NRMS at D=64, batch 64, GloVe 50d
titles, 50-click histories, on MovieLens-100k.

    .venv/bin/python bench/train_speed.py [--steps 60] [--device cpu]
"""
from __future__ import annotations

import argparse

from common import machine

import numpy as np
import torch

from lego_core.data import datasets
from lego_core.core.devices import torch_device
from lego_core.training.epoch_time import in_memory_trainer, step_timing
from lego_core.bricks.recipe import Recipe


def samples_per_second(preset: str, dataset, steps: int, warmup: int, device: torch.device) -> float:
    recipe = Recipe.preset(preset).with_overrides({
        "training.dim": 64, "training.batch_size": 64, "training.negatives": 4, "training.max_history": 50,
        "training.fields": ["title"], "training.glove": True, "training.device": str(device),
        "training.lr_pretrained": 1e-3})
    trainer = in_memory_trainer(recipe, dataset)
    return trainer.t.batch_size / step_timing(trainer, steps, warmup)["per_step"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", nargs="+", default=["naml", "nrms"])
    args = parser.parse_args()
    device = torch_device(args.device)
    dataset = datasets.load("ml-100k")
    print(f"machine: {machine()}; device {device}")
    print(f"MovieLens-100k: {dataset.num_items} items, {dataset.num_users} users; D=64, batch 64, K=4, "
          f"history 50, GloVe 50d titles; {args.steps} timed steps after {args.warmup} warm-up")
    for preset in args.presets:
        rate = samples_per_second(preset, dataset, args.steps, args.warmup, device)
        print(f"{preset.upper():6s} {rate:8.1f} samples/s")


if __name__ == "__main__":
    np.random.seed(0)
    main()
