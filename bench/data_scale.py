"""MIND-large scale: reading, caching, training step rate and cached evaluation on a synthetic
MIND-format folder the size of MIND-large (160k news, 1M users, 2.2M train impressions of ~37
candidates, 0.37M dev impressions; `lego_core.data.readers.synthetic_mind`).

Each measurement runs in a fresh subprocess, so its peak RSS (ru_maxrss) is its own: a raw parse of
the same four TSV files by `pyarrow.csv.read_csv` (the floor a reader can reach), first read
(`datasets.load(folder)`, cache miss) and its ratio to the raw parse, cached read (hit), NRMS (D=64, batch 64, K=4, history 50,
title only, no GloVe) setup and train steps (`Trainer.train_step`, as bench/train_speed.py) and a
cached evaluation of the valid split (as bench/eval_cache.py), with untrained weights.

    nice -n 10 .venv/bin/python bench/data_scale.py [--scale 0.1] [--steps 50] [--device cpu]
    .venv/bin/python bench/data_scale.py --folder /tmp/mindL/mind --skip train eval   # an existing folder
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

TARGETS = {"first read": 30.0, "cached read": 0.5}  # seconds, at full size on 2 idle cores
RSS_TARGET_GB = {"first read": 4.0}
RATIO_TARGET = 25.0  # first read / raw pyarrow parse of the same files
FULL = dict(n_news=160_000, n_users=1_000_000, n_train=2_200_000, n_dev=370_000)


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _cpu_s() -> float:
    """CPU seconds this process used (user + system): on a shared machine, less load-dependent than wall."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raw_parse(folder: str) -> dict:
    """`pyarrow.csv.read_csv` of the folder's four TSV files (tab-separated, no quoting), nothing else."""
    import pyarrow.csv as pv

    files = sorted(Path(folder).glob("*/news.tsv")) + sorted(Path(folder).glob("*/behaviors.tsv"))
    start = time.perf_counter()
    rows = sum(pv.read_csv(f, read_options=pv.ReadOptions(autogenerate_column_names=True),
                           parse_options=pv.ParseOptions(delimiter="\t", quote_char=False)).num_rows for f in files)
    return {"read_s": time.perf_counter() - start, "files": len(files), "rows": rows}


def measure(what: str, folder: str, steps: int, device: str) -> dict:
    """One measurement in this (fresh) process; the parent reads the JSON line it prints."""
    if what == "raw":
        cpu = _cpu_s()
        return {**raw_parse(folder), "cpu_s": _cpu_s() - cpu, "peak_rss_gb": _peak_gb()}
    from lego_core.data import datasets

    start, cpu = time.perf_counter(), _cpu_s()
    dataset = datasets.load(folder)
    out = {"read_s": time.perf_counter() - start, "cpu_s": _cpu_s() - cpu, "cache": dataset.info.get("cache"),
           **dataset.summary()}
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
    parser.add_argument("--folder", help="read this MIND folder (e.g. one an earlier run wrote) instead of writing "
                                         "a new one; --scale then only labels the figures")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.folder, args.steps, args.device)))
        return
    from lego_core.data.readers.synthetic_mind import write_mind_folder

    root = Path(args.root or tempfile.mkdtemp(prefix="lego-data-scale-"))
    folder, cache = Path(args.folder) if args.folder else root / "mind", root / "cache"
    shutil.rmtree(cache / "datasets", ignore_errors=True)  # the first read must build (this bench's own cache)
    sizes = {k: max(1000, int(v * args.scale)) for k, v in FULL.items()}
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    if args.folder:
        print(f"folder {folder} (given; scale {args.scale} as labelled)")
    else:
        print(f"scale {args.scale}: {sizes}")
        start = time.perf_counter()
        write_mind_folder(folder, **sizes)
        print(f"wrote {folder} in {time.perf_counter() - start:.1f} s", flush=True)
    files = _du(folder)
    rows = []
    raw = run_child("raw", folder, cache, args)
    rows.append(("raw pyarrow parse", raw.get("read_s"), raw.get("peak_rss_gb"),
                 raw.get("error", "") or f"pyarrow.csv.read_csv of {raw.get('files')} TSV files"))
    first = run_child("read", folder, cache, args)
    rows.append(("first read", first.get("read_s"), first.get("peak_rss_gb"),
                 first.get("error", "") or f"{first.get('cpu_s', 0):.1f} CPU s (raw parse {raw.get('cpu_s', 0):.2f})"))
    if raw.get("read_s") and first.get("read_s"):
        ratio = first["read_s"] / raw["read_s"]
        rows.append(("first read / raw parse", ratio, None, f"{ratio:.1f}x (target <= {RATIO_TARGET:.0f}x)"
                     + (" (over target)" if ratio > RATIO_TARGET else "")))
    print(f"  counts: {({k: v for k, v in first.items() if k.endswith(('items', 'users', 'clicks', 'impressions'))})}",
          flush=True)
    cached = run_child("read", folder, cache, args)
    rows.append(("cached read", cached.get("read_s"), cached.get("peak_rss_gb"),
                 cached.get("error", "") or f"{cached.get('cpu_s', 0):.2f} CPU s; cache {cached.get('cache')}"))
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
    print(f"\ninput files {files:.2f} GiB; processed cache on disk {on_disk:.2f} GiB; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'step':24s} {'seconds':>9s} {'peak RSS':>9s}  note")
    for what, seconds, rss, note in rows:
        target, rss_target = TARGETS.get(what), RSS_TARGET_GB.get(what)
        if target:
            note += f" (target < {target:g} s" + (f", < {rss_target:g} GB" if rss_target else "") + " at full size)"
        miss = " (over target)" if args.scale >= 1 and target and seconds and seconds > target else ""
        rss_note = f"{rss:8.2f}G" if rss else f"{'':9s}"
        if args.scale >= 1 and rss and rss_target and rss > rss_target:
            miss += " (RSS over target)"
        print(f"{what:24s} {seconds if seconds is not None else float('nan'):9.2f} {rss_note}  {note}{miss}")
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)  # a given --folder lies outside root and is kept


if __name__ == "__main__":
    main()
