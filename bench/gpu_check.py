"""End-to-end check of the accelerator path in a few minutes, printing figures.

Runs on CUDA when present (else on the CPU, so it can be tried anywhere): mixed precision, the
ONCE brick (SmolLM2, LoRA on its top 2 layers) with the layer cache and the history cache, a
word model (NRMS), the cached evaluation, and two DDP processes when two GPUs exist. Each part
prints its time and result; any failure stops with its error.

    .venv/bin/python bench/gpu_check.py [--device auto|cuda|cpu] [--steps 20]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import machine

import torch

from lego_core import runs
from lego_core.data import datasets
from lego_core.core import devices
from lego_core.evaluation import evaluate as ev
from lego_core.training.epoch_time import in_memory_trainer, training_batches
from lego_core.bricks.recipe import Recipe
from lego_core.training.train import Trainer


def timed_steps(preset: str, dataset, device: str, steps: int, **overrides) -> Trainer:
    recipe = Recipe.preset(preset).with_overrides({"training.device": device, "training.amp": True,
                                                   "training.batch_size": 64, **overrides})
    trainer = in_memory_trainer(recipe, dataset)
    start = time.perf_counter()
    losses = [trainer.train_step(batch) for batch in training_batches(trainer, steps)]
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    cache = "on" if trainer.history is not None else "off"
    print(f"  {preset:8s} {steps} steps in {seconds:6.1f} s ({seconds / steps:.3f} s/step), history cache {cache}, "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)
    assert all(map(lambda x: x == x, losses)), "a loss is NaN"
    return trainer


def cached_evaluation(trainer: Trainer) -> None:
    start = time.perf_counter()
    metrics = ev.evaluate(trainer.model, trainer.dataset, "valid", batch_size=512)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    print(f"  cached evaluation of valid: auc {metrics['auc']:.4f} in {time.perf_counter() - start:.1f} s", flush=True)


def ddp_run(device: str) -> None:
    recipe = Recipe.preset("nrms").with_overrides({"training.epochs": 1, "training.max_steps_per_epoch": 20,
                                                   "training.device": device})
    with tempfile.TemporaryDirectory() as root:
        run = runs.create(recipe, root=root)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                               "-m", "lego_core", "train", "--run-dir", str(run.path), "--quiet"],
                              capture_output=True, text=True, env=os.environ.copy())
        if done.returncode:
            raise SystemExit(f"DDP run failed:\n{done.stderr[-2000:]}")
        print(f"  2-process DDP (nrms, 20 steps): test auc {run.metrics()['test']['auc']:.4f} "
              f"in {time.perf_counter() - start:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = devices.resolve(args.device)
    print(f"machine: {machine()}; device {device}")
    if device.startswith("cuda"):
        print(f"  bf16 supported: {torch.cuda.is_bf16_supported()}")
    dataset = datasets.load("ml-100k")
    started = time.perf_counter()
    word = timed_steps("nrms", dataset, device, args.steps)
    cached_evaluation(word)
    lm = timed_steps("once", dataset, device, args.steps)  # LoRA, layer cache, history cache by default
    cached_evaluation(lm)
    if device.startswith("cuda"):
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2 ** 30:.2f} GiB")
    if devices.cuda_count() >= 2:
        ddp_run("cuda")
    else:
        print("  2-process DDP: skipped (needs 2 GPUs; tests/test_history_cache.py runs it on the CPU)")
    print(f"all checks passed in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
