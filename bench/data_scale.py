"""MIND-large scale: reading, caching, training step rate and cached evaluation on a synthetic
MIND-format folder the size of MIND-large (160k news, 1M users, 2.2M train impressions of ~37
candidates, 0.37M dev impressions; `lego_core.data.readers.synthetic_mind`).

Each measurement runs in a fresh subprocess, so its peak RSS (ru_maxrss) is its own: first read
(`datasets.load(folder)`, cache miss), cached read (hit), NRMS (D=64, batch 64, K=4, history 50,
title only, no GloVe) setup and train steps (`Trainer.train_step`, as bench/train_speed.py) and a
cached evaluation of the valid split (as bench/eval_cache.py), with untrained weights.

    nice -n 10 .venv/bin/python bench/data_scale.py [--scale 0.1] [--steps 50] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine

TARGETS = {"first read": 90.0, "cached read": 3.0}
RSS_TARGET_GB = 8.0
FULL = dict(n_news=160_000, n_users=1_000_000, n_train=2_200_000, n_dev=370_000)


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(what: str, folder: str, steps: int, device: str) -> dict:
    """One measurement in this (fresh) process; the parent reads the JSON line it prints."""
    from lego_core.data import datasets

    start = time.perf_counter()
    dataset = datasets.load(folder)
    out = {"read_s": time.perf_counter() - start, "cache": dataset.info.get("cache"), **dataset.summary()}
    if what == "train":
        from lego_core.core.devices import torch_device
        from lego_core.training.epoch_time import in_memory_trainer, step_timing
        from lego_core.bricks.recipe import Recipe

        dev = torch_device(device)
        recipe = Recipe.preset("nrms").with_overrides({
            "training.dim": 64, "training.batch_size": 64, "training.negatives": 4, "training.max_history": 50,
            "training.fields": ["title"], "training.glove": False, "training.device": str(dev)})
        start = time.perf_counter()
        trainer = in_memory_trainer(recipe, dataset)
        out["setup_s"] = time.perf_counter() - start
        out["samples"] = len(trainer.samples)
        out["steps_per_s"] = 1.0 / step_timing(trainer, steps, warmup=5)["per_step"]
        out["epoch_steps"] = trainer.steps_per_epoch
    elif what == "eval":
        from lego_core.evaluation import evaluate as ev
        from lego_core.core.devices import torch_device
        from lego_core.bricks.model import build
        from lego_core.bricks.recipe import Recipe

        dev = torch_device(device)
        recipe = Recipe.preset("nrms").with_overrides({"training.dim": 64, "training.fields": ["title"],
                                                       "training.glove": False})
        model = build(recipe, dataset, dev).to(dev).eval()
        start = time.perf_counter()
        metrics = ev.evaluate(model, dataset, "valid", cached=True, batch_size=512)
        out["eval_s"] = time.perf_counter() - start
        out["auc"] = metrics.get("auc")
    out["peak_rss_gb"] = _peak_gb()
    return out


def run_child(what: str, folder: Path, cache: Path, args) -> dict:
    env = {**os.environ, "LEGO_CACHE_DIR": str(cache)}
    cmd = [sys.executable, __file__, "--child", what, "--folder", str(folder), "--steps", str(args.steps),
           "--device", args.device]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        print(done.stderr[-3000:], file=sys.stderr)
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _du(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**30


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of MIND-large's size")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", help="work folder (default: a new temporary one, removed afterwards)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["train", "eval"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.folder, args.steps, args.device)))
        return
    from lego_core.data.readers.synthetic_mind import write_mind_folder

    root = Path(args.root or tempfile.mkdtemp(prefix="lego-data-scale-"))
    folder, cache = root / "mind", root / "cache"
    sizes = {k: max(1000, int(v * args.scale)) for k, v in FULL.items()}
    print(f"machine: {machine()}")
    print(f"scale {args.scale}: {sizes}")
    start = time.perf_counter()
    write_mind_folder(folder, **sizes)
    files = _du(folder)
    print(f"wrote {folder} ({files:.2f} GiB) in {time.perf_counter() - start:.1f} s", flush=True)
    rows = []
    first = run_child("read", folder, cache, args)
    rows.append(("first read", first.get("read_s"), first.get("peak_rss_gb"), first.get("error", "")))
    print(f"  counts: {({k: v for k, v in first.items() if k.endswith(('items', 'users', 'clicks', 'impressions'))})}",
          flush=True)
    cached = run_child("read", folder, cache, args)
    rows.append(("cached read", cached.get("read_s"), cached.get("peak_rss_gb"), cached.get("error", "")))
    on_disk = _du(cache / "datasets")
    if "train" not in args.skip:
        train = run_child("train", folder, cache, args)
        rows.append(("NRMS setup", train.get("setup_s"), train.get("peak_rss_gb"), train.get("error", "")))
        rate = train.get("steps_per_s")
        if rate:
            epoch_h = train["epoch_steps"] / rate / 3600
            rows.append((f"NRMS {args.steps} steps", args.steps / rate, None,
                         f"{rate:.2f} steps/s; one epoch = {train['epoch_steps']:,} steps ~ {epoch_h:.1f} h"))
    if "eval" not in args.skip:
        ev = run_child("eval", folder, cache, args)
        rows.append(("cached eval (valid)", ev.get("eval_s"), ev.get("peak_rss_gb"),
                     ev.get("error", "") or f"{first.get('valid_impressions', 0):,} impressions"))
    print(f"\ninput files {files:.2f} GiB; processed cache on disk {on_disk:.2f} GiB")
    print(f"{'step':24s} {'seconds':>9s} {'peak RSS':>9s}  note")
    for what, seconds, rss, note in rows:
        target = TARGETS.get(what)
        miss = " (over target)" if args.scale >= 1 and target and seconds and seconds > target else ""
        rss_note = f"{rss:8.2f}G" if rss else f"{'':9s}"
        if args.scale >= 1 and rss and rss > RSS_TARGET_GB:
            miss += " (RSS over target)"
        print(f"{what:24s} {seconds if seconds is not None else float('nan'):9.2f} {rss_note}  {note}{miss}")
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
