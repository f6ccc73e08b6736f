"""Cached vs uncached evaluation time for NRMS on MovieLens-100k and on MIND-scale synthetic data
(50k items, 50k users, 70k test impressions of 37 candidates, 50-click histories), and for
PLM-NR (MiniLM with its top 2 layers tuned) on MovieLens-100k, where item encoding dominates.

Cached: every item encoded once, every user once, impressions scored from the two tables.
Uncached: every impression encodes its own history and candidates. The uncached path on the
MIND-scale set is timed on a random sample of impressions (--sample) and scaled to the full split,
since running it in full takes long on a CPU; the printout says so.

    .venv/bin/python bench/eval_cache.py [--sample 3000] [--device cpu]
"""
from __future__ import annotations

import argparse
import time

from common import machine

import numpy as np
import torch

from lego_core.data import datasets
from lego_core.evaluation import evaluate as ev
from lego_core.bricks.model import build
from lego_core.bricks.recipe import Recipe
from lego_core.core.devices import torch_device


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def compare(name: str, preset: str, dataset, device: torch.device, sample: int | None, batch: int) -> None:
    recipe = Recipe.preset(preset).with_overrides({"dataset.name": dataset.name, "training.dim": 64})
    model = build(recipe, dataset, device).to(device).eval()
    split = "test"
    full = dataset.splits[split]
    cached_s, cached = timed(lambda: ev.evaluate(model, dataset, split, cached=True, batch_size=batch))
    scale = 1.0
    if sample and sample < len(full):
        rows = np.random.default_rng(0).choice(len(full), sample, replace=False)
        dataset.splits["bench"] = full.select(np.sort(rows))
        scale = len(full) / sample
        unc_s, _ = timed(lambda: ev.evaluate(model, dataset, "bench", cached=False, batch_size=batch))
        same = "(sampled; metrics not comparable)"
    else:
        unc_s, unc = timed(lambda: ev.evaluate(model, dataset, split, cached=False, batch_size=batch))
        same = f"max metric difference {max(abs(cached[k] - unc[k]) for k in ev.REPORTED):.2e}"
    unc_full = unc_s * scale
    print(f"{preset.upper()} on {name}: {len(full):,} impressions, {full.items.size:,} candidates, {dataset.num_items:,} items, "
          f"{dataset.num_users:,} users")
    print(f"  cached   {cached_s:9.2f} s")
    print(f"  uncached {unc_full:9.2f} s{' (%d impressions timed in %.2f s, scaled x%.1f)' % (sample, unc_s, scale) if scale > 1 else ''}")
    print(f"  speed-up {unc_full / cached_s:9.1f}x  {same}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", type=int, default=3000, help="impressions timed uncached on the large set")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", nargs="+", default=["nrms", "plmnr"], help="presets timed on MovieLens-100k")
    parser.add_argument("--skip-mind", action="store_true", help="leave out the MIND-scale synthetic set")
    args = parser.parse_args()
    device = torch_device(args.device)
    print(f"machine: {machine()}; device {device}; D=64, untrained weights (timing does not depend on them)")
    movielens = datasets.load("ml-100k")
    for preset in args.presets:
        compare("MovieLens-100k", preset, movielens, device, None, args.batch)
    if not args.skip_mind:
        synthetic = datasets.load("synthetic", n_items=50_000, n_users=50_000, n_impressions=10_000,
                                  n_eval_impressions=70_000, impression_size=37, history_len=50)
        compare("MIND-scale synthetic", "nrms", synthetic, device, args.sample, args.batch)


if __name__ == "__main__":
    main()
