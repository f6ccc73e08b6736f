"""Start-up time of the first UMAP map in a fresh process (MovieLens-100k size: 1,682 items x 64
dimensions), before and after numba's compiled code is kept in the cache folder.

    .venv/bin/python bench/umap_startup.py [--items 1682] [--dim 64] [--repeats 1] [--delay 5]

Every measurement is a new Python process (what a new app process pays). Rows:
- before: the code before the change (`import umap; umap.UMAP(...).fit_transform`): umap-learn's
  own jitted functions compile in every process;
- after, cold cache: `lego_core.explore.maps.umap_2d` with an empty cache folder (compiles once, writes
  numba's cache under `cache/numba`);
- after, warm cache: the same with the cache folder the cold run filled;
- after, warm cache + warm-up: `maps.warm_umap()` at "app start", the map requested `--delay`
  seconds later (a visitor opening the Embeddings page).
The first-map time runs from the request to the map (the `import umap` included); its CPU time
(user + system, all threads) is what it would take on an idle machine, whatever else runs; the
load is `os.getloadavg()` (1 minute) when the request is made. The vectors are seeded random numbers: the
time depends on the table's shape, not on its values.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    start = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    import numpy as np

    vectors = np.random.default_rng(0).normal(size=(args.items, args.dim)).astype(np.float32)
    if args.child != "before":
        from lego_core.explore import maps

        if args.child == "warmup":
            maps.warm_umap()
            time.sleep(args.delay)
    load = os.getloadavg()[0]
    cpu = _cpu()
    request = time.perf_counter()
    if args.child == "before":
        import umap

        umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=0, n_jobs=1).fit_transform(vectors)
    else:
        maps.umap_2d(f"bench-{os.getpid()}", vectors)  # a new run id: the map store misses
    done = time.perf_counter()
    print(json.dumps({"first_map_s": done - request, "cpu_s": _cpu() - cpu, "process_s": done - start,
                      "load": load}))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(mode: str, cache: Path, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["LEGO_CACHE_DIR"] = str(cache)
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--items", str(args.items), "--dim",
                          str(args.dim), "--delay", str(args.delay)], env=env, capture_output=True, text=True,
                         check=True, cwd=str(ROOT))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1682)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="measurements per row (each a new cache for cold)")
    parser.add_argument("--delay", type=float, default=5.0, help="seconds between app start and the request")
    parser.add_argument("--child", choices=["before", "after", "warmup"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    rows: list[tuple[str, dict]] = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="umap-bench-") as folder:
            cache = Path(folder)
            rows.append(("before (umap-learn compiles in every process)", measure("before", cache, args)))
            rows.append(("after, cold cache (first process ever)", measure("after", cache, args)))
            rows.append(("after, warm cache", measure("after", cache, args)))
            rows.append((f"after, warm cache + warm-up at start, request {args.delay:g} s later",
                         measure("warmup", cache, args)))
    print(f"{args.items} items x {args.dim} dims, {os.cpu_count()} CPU cores, one new process per row")
    print("| case | first map (s) | its CPU time (s) | whole process (s) | load (1 min) |")
    print("|---|---|---|---|---|")
    for name, row in rows:
        print(f"| {name} | {row['first_map_s']:.2f} | {row['cpu_s']:.2f} | {row['process_s']:.2f} | "
              f"{row['load']:.2f} |")


if __name__ == "__main__":
    main()
