"""Argument types every command shares: counts that must be positive (or at least zero), refused by
argparse in one line (`--limit -1`) before any work starts."""
from __future__ import annotations

import argparse


def _count(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}; give {low} or more")
        return value
    parse.__name__ = "positive_int" if low == 1 else "count"
    return parse


positive_int = _count(1)  # --limit, --batch-size, --nproc: 1 or more
count = _count(0)  # --tail, --node-rank: 0 or more
