"""Training-step time of the `lm_decoder` content operator (SmolLM2-135M, top 2 layers trained)
with and without the layer cache, and the ratio. A step = encode a batch of MovieLens-100k item
texts, a dot-product click loss between item pairs, backward, Adam step.

    .venv/bin/python bench/lm_cache.py [--items 512] [--batch 32] [--steps 10] [--device cpu]

Runs in a temporary LEGO_CACHE_DIR, so the one-off cache fill is measured too.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from common import machine

import torch

from lego_core.data import datasets
from lego_core.data.text import item_texts
from lego_core.bricks import get as get_brick
from lego_core.bricks.base import BuildContext

TEMPLATE = "Title: {title}. Genres: {genres}."


def step_time(op, n_items: int, batch: int, steps: int, warmup: int, device: torch.device, seed: int = 0) -> float:
    """Mean seconds per training step over `steps` after `warmup` steps."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in op.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4)
    op.train()
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        ids = torch.randint(0, n_items, (batch,), generator=gen).to(device)
        labels = torch.randint(0, 2, (batch // 2,), generator=gen).float().to(device)
        vec = op(None, None, ids)
        logits = (vec[0::2] * vec[1::2]).sum(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=512, help="first N MovieLens items (the cache covers them)")
    parser.add_argument("--batch", type=int, default=32, help="items per step")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=2, help="top layers trained")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    os.environ["LEGO_CACHE_DIR"] = tempfile.mkdtemp(prefix="lego-bench-lm-")
    device = torch.device(args.device)
    torch.manual_seed(0)

    dataset = datasets.load("ml-100k")
    texts = item_texts(dataset, template=TEMPLATE)[: args.items]
    ctx = BuildContext(dim=64, num_items=len(texts), num_users=1, item_texts=texts, device=str(device))
    spec = get_brick("lm_decoder", "content")
    print(f"machine: {machine()}")
    print(f"SmolLM2-135M, tuning=top {args.top} layers, {len(texts)} items, batch {args.batch}, "
          f"max_length 32, {args.steps} timed steps")
    results = {}
    for cached in (False, True):
        t0 = time.perf_counter()
        op = spec.cls(ctx, **spec.validate({"tuning": "top", "top_layers": args.top, "layer_cache": cached}))
        build = time.perf_counter() - t0
        seconds = step_time(op, len(texts), args.batch, args.steps, args.warmup, device)
        params = sum(p.numel() for p in op.parameters())
        label = "with layer cache" if cached else "without cache   "
        print(f"{label}: {seconds * 1000:8.1f} ms/step   build {build:6.1f} s   operator parameters {params:,}")
        results[cached] = seconds
        del op
    print(f"speed-up with the layer cache: {results[False] / results[True]:.1f}x")


if __name__ == "__main__":
    main()
