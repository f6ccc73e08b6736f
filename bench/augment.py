"""LLM data generation speed: items per second for SmolLM2-135M-Instruct writing a one-sentence
description of MovieLens-100k movies (greedy, batched), and the rate of a repeated run served from
the store.

    .venv/bin/python bench/augment.py [--items 32] [--batch-size 8] [--max-new-tokens 32]

Runs in a temporary LEGO_CACHE_DIR (the first load converts the GGUF file; that is timed apart).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from common import machine

from lego_core.data import datasets
from lego_core.lm import generation as aug
from lego_core.lm.models import load_decoder

TEMPLATE = "Describe this movie in one short sentence.\n{title} ({genres})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    os.environ["LEGO_CACHE_DIR"] = tempfile.mkdtemp(prefix="lego-bench-augment-")
    dataset = datasets.load("ml-100k")
    print(f"machine: {machine()}")
    t0 = time.perf_counter()
    load_decoder("smollm2")
    print(f"first SmolLM2 load (GGUF -> float16 safetensors): {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    load_decoder("smollm2")
    print(f"later SmolLM2 loads: {time.perf_counter() - t0:.1f} s")
    for batch in args.batch_size:
        os.environ["LEGO_CACHE_DIR"] = tempfile.mkdtemp(prefix="lego-bench-augment-")  # an empty store
        field = "description"
        t0 = time.perf_counter()
        out = aug.augment(dataset, field, TEMPLATE, max_new_tokens=args.max_new_tokens, batch_size=batch,
                          limit=args.items, save=False)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        aug.augment(dataset, field, TEMPLATE, max_new_tokens=args.max_new_tokens, batch_size=batch,
                    limit=args.items, save=False)
        again = time.perf_counter() - t0
        print(f"batch {batch:3d}: {args.items / seconds:6.2f} items/s generated (incl. model load), "
              f"{args.items / again:8.0f} items/s from the store; e.g. {out.items[field].iloc[0]!r}")


if __name__ == "__main__":
    main()
