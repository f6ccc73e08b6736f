"""One process against two (torchrun, gloo on CPU) at MIND-large scale: the cached evaluation of the
dev impressions (valid + test, the two halves of dev) and NRMS training throughput.

Untrained NRMS (D=64, title only, no GloVe; training: batch 64, K=4, history 50, as
bench/data_scale.py). Each measurement runs in fresh processes: 1 process with 2 torch threads,
or `python -m torch.distributed.run --standalone --nproc_per_node 2` with 1 thread each (two
cores either way). Evaluation is `evaluate(..., sharded=True)`: each rank encodes and scores its
share, rank 0 computes the metrics (the same figures as one process). Training is the library's
DDP `Trainer` (`epoch_time.in_memory_trainer`, `step_timing`): each rank steps on its own share of
the epoch, so samples/s = batch x ranks / seconds per step, and the epoch time is extrapolated
from the timed steps (a full epoch at full scale takes hours here). The processed-dataset cache is
built first, in its own process, so every measured process does a cached read. Peak RSS is per
process (the largest rank's for two).

    nice -n 10 .venv/bin/python bench/ddp_scale.py [--scale 0.05 | --folder MIND_FOLDER] [--steps 30]
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

FULL = dict(n_news=160_000, n_users=1_000_000, n_train=2_200_000, n_dev=370_000)
THREADS = {1: 2, 2: 1}  # torch threads per process: two cores in all, either way
EVAL_BATCH = 512


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _recipe(training: bool):
    from lego_core.bricks.recipe import Recipe

    overrides = {"training.dim": 64, "training.fields": ["title"], "training.glove": False, "training.device": "cpu"}
    if training:
        overrides.update({"training.batch_size": 64, "training.negatives": 4, "training.max_history": 50})
    return Recipe.preset("nrms").with_overrides(overrides)


def measure(what: str, folder: str, steps: int, threads: int) -> dict:
    """One measurement in this (fresh) process, on every rank when under torchrun."""
    import torch

    torch.set_num_threads(threads)
    from lego_core.data import datasets
    from lego_core.training.distributed import init_distributed, leave_process_group

    start = time.perf_counter()
    dataset = datasets.load(folder)
    out = {"read_s": time.perf_counter() - start, "cache": dataset.info.get("cache"), "threads": threads,
           **{f"{s}_impressions": len(imps) for s, imps in dataset.splits.items()}}
    if what == "eval":
        import torch.distributed as dist
        from lego_core.bricks.model import build
        from lego_core.evaluation import evaluate as ev

        info, device = init_distributed("cpu")
        torch.manual_seed(0)  # the same untrained weights on every rank
        model = build(_recipe(False), dataset, device).to(device).eval()
        for split in ("valid", "test"):
            if info.enabled:
                dist.barrier()  # both ranks start together: the clock measures the evaluation alone
            start = time.perf_counter()
            metrics = ev.evaluate(model, dataset, split, cached=True, batch_size=EVAL_BATCH, sharded=True)
            out[f"{split}_s"] = time.perf_counter() - start
            if metrics is not None:
                out[f"{split}_auc"] = metrics["auc"]
        out["world"] = info.world
        leave_process_group()
    elif what == "train":
        from lego_core.training.epoch_time import in_memory_trainer, step_timing

        start = time.perf_counter()
        trainer = in_memory_trainer(_recipe(True), dataset)  # DDP under torchrun (Trainer.setup)
        out["setup_s"] = time.perf_counter() - start
        out["per_step_s"] = step_timing(trainer, steps, warmup=5)["per_step"]
        out.update(world=trainer.dist.world, batch=trainer.t.batch_size, samples=len(trainer.samples),
                   epoch_steps=trainer.steps_per_epoch)  # this rank's steps per epoch
        trainer.net = trainer.model  # see leave_process_group
        leave_process_group()
    out["peak_rss_gb"] = _peak_gb()
    return out


def _available_gb() -> float:
    with open("/proc/meminfo") as fh:
        fields = dict(line.split(":", 1) for line in fh)
    return int(fields["MemAvailable"].split()[0]) / 2**20


def run_child(what: str, nproc: int, folder: Path, cache: Path, work: Path, args, need_gb: float = 0.0) -> list[dict]:
    """The measurement in fresh process(es); one JSON per rank. Refused (an error row) when `need_gb`
    per process does not fit in the memory available now: an out-of-memory kill hits other work too."""
    if nproc * need_gb * 1.1 > _available_gb():
        return [{"error": f"not run: {nproc} x {need_gb:.1f} GB needed, {_available_gb():.1f} GB available"}]
    threads = THREADS.get(nproc, 1)
    env = {**os.environ, "LEGO_CACHE_DIR": str(cache), "OMP_NUM_THREADS": str(threads)}
    out = work / f"{what}-{nproc}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    script = [__file__, "--child", what, "--folder", str(folder), "--steps", str(args.steps),
              "--threads", str(threads), "--out", str(out)]
    launcher = [sys.executable] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    start = time.perf_counter()
    done = subprocess.run(launcher + script, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        print(done.stderr[-3000:], file=sys.stderr)
        return [{"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}]
    ranks = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    for r in ranks:
        r["wall_s"] = wall  # the launch as a whole: start-up and the read included
    return ranks


def _du(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**30


def _rss(ranks: list[dict]) -> str:
    return ", ".join(f"{r.get('peak_rss_gb', 0):.2f}" for r in ranks)


def _table(rows: list[tuple]) -> None:
    print(f"\n{'measure':34s} {'1 process':>12s} {'2 processes':>12s} {'ratio 2/1':>10s}  note")
    for name, one, two, note in rows:
        ratio = two / one if one and two else float("nan")
        print(f"{name:34s} {one or float('nan'):12.2f} {two or float('nan'):12.2f} {ratio:10.2f}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", help="a MIND-format folder (default: a synthetic one written at --scale)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of MIND-large's size (without --folder)")
    parser.add_argument("--steps", type=int, default=30, help="training steps timed (after 5 warm-up)")
    parser.add_argument("--root", help="work folder (default: a new temporary one, removed afterwards)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["train", "eval"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = measure(args.child, args.folder, args.steps, args.threads)
        rank = os.environ.get("RANK", "0")
        Path(args.out, f"rank{rank}.json").write_text(json.dumps(result))
        return
    root = Path(args.root or tempfile.mkdtemp(prefix="lego-ddp-scale-"))
    cache, work = root / "cache", root / "work"
    print(f"machine: {machine()}; 1 process: {THREADS[1]} torch threads, 2 processes: {THREADS[2]} each")
    if args.folder:
        folder = Path(args.folder)
    else:
        from lego_core.data.readers.synthetic_mind import write_mind_folder

        folder = root / "mind"
        sizes = {k: max(1000, int(v * args.scale)) for k, v in FULL.items()}
        print(f"scale {args.scale}: {sizes}")
        start = time.perf_counter()
        write_mind_folder(folder, **sizes)
        print(f"wrote {folder} ({_du(folder):.2f} GiB) in {time.perf_counter() - start:.1f} s", flush=True)
    first = run_child("read", 1, folder, cache, work, args)[0]  # builds the processed cache once
    print(f"read {folder} ({first.get('cache')}) in {first.get('read_s', float('nan')):.1f} s, "
          f"peak {first.get('peak_rss_gb', float('nan')):.2f} GB {first.get('error', '')}", flush=True)
    rows = []
    if "eval" not in args.skip:
        res = {1: run_child("eval", 1, folder, cache, work, args)}
        res[2] = run_child("eval", 2, folder, cache, work, args, res[1][0].get("peak_rss_gb", 0.0))
        for split in ("valid", "test"):
            n_imps = first.get(f"{split}_impressions", 0)
            secs = {n: r[0].get(f"{split}_s") for n, r in res.items()}
            rate = {n: n_imps / s if s else None for n, s in secs.items()}
            aucs = {n: r[0].get(f"{split}_auc") for n, r in res.items()}
            for n in (1, 2):
                print(f"  eval {split}, {n} process(es): {secs[n] or float('nan'):.2f} s, AUC {aucs[n]}, "
                      f"peak RSS {max(r.get('peak_rss_gb', 0) for r in res[n]):.2f} GB (per rank: "
                      f"{_rss(res[n])}) {res[n][0].get('error', '')}")
            rows.append((f"cached eval {split} (impressions/s)", rate[1], rate[2], f"{n_imps:,} impressions"))
        rows.append(("  peak RSS per process (GB)", max(r.get("peak_rss_gb", 0) for r in res[1]),
                     max(r.get("peak_rss_gb", 0) for r in res[2]), "ratio: memory per process"))
    if "train" not in args.skip:
        res = {1: run_child("train", 1, folder, cache, work, args)}
        res[2] = run_child("train", 2, folder, cache, work, args, res[1][0].get("peak_rss_gb", 0.0))
        rate, epoch = {}, {}
        for n in (1, 2):
            r = res[n][0]
            if "per_step_s" not in r:
                print(f"  train, {n} process(es): {r.get('error')}")
                continue
            rate[n] = r["batch"] * r["world"] / r["per_step_s"]
            epoch[n] = r["epoch_steps"] * r["per_step_s"]
            print(f"  train, {n} process(es): {r['per_step_s']:.3f} s/step on each rank, setup {r['setup_s']:.1f} s, "
                  f"{r['epoch_steps']:,} steps/epoch per rank ({r['samples']:,} samples) -> epoch ~ "
                  f"{epoch[n] / 3600:.2f} h (extrapolated from {args.steps} steps); peak RSS per rank: "
                  f"{_rss(res[n])} GB")
        rows.append(("NRMS training (samples/s)", rate.get(1), rate.get(2), f"{args.steps} steps timed"))
        rows.append(("  epoch time (h, extrapolated)", epoch[1] / 3600 if 1 in epoch else None,
                     epoch[2] / 3600 if 2 in epoch else None, "ratio below 1: faster"))
        rows.append(("  peak RSS per process (GB)", max(r.get("peak_rss_gb", 0) for r in res[1]),
                     max(r.get("peak_rss_gb", 0) for r in res[2]), ""))
    _table(rows)
    print(f"\nprocessed cache on disk {_du(cache / 'datasets') if (cache / 'datasets').exists() else 0:.2f} GiB")
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
