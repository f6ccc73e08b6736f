"""The impressions protocol (MIND, xMIND, PENS, EB-NeRD): logged impressions keep their own click
labels; the training log is `train` and the held-out log ("dev", "valid", "validation") is split
by impression into `valid` and `test`: `numpy.random.default_rng(seed).permutation` of its
impressions, the first floor(M/2) -> valid, the rest -> test. One seed, one split, in every reader."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lego_core.core.errors import DataError
from lego_core.data.arrays import offsets_from_sizes
from lego_core.data.io import warn
from lego_core.data.schema import IMPRESSIONS, Impressions

NOTE = "dev impressions split 50/50 into valid/test by a seeded permutation"


def known_candidates(rows: np.ndarray | None, items: np.ndarray, n: int, info: dict, split: str, path: Path,
                     unknown: str, none_known: str, sizes: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ok [T], kept sizes [n], keep [n]): candidates (impression `rows`, item indices `items`)
    naming unknown items (-1) are dropped, then impressions left without any; both counts go to
    `info` and one warning names `unknown` (what was dropped); DataError `none_known` when no
    impression is left. With rows None, `sizes` (candidates per impression, in order) stand for
    them: only the unknown candidates are placed, not all 80 million of MIND-large."""
    ok = items >= 0
    if rows is None:
        bad = np.flatnonzero(~ok)
        owner = np.searchsorted(offsets_from_sizes(sizes), bad, side="right") - 1
        sizes = np.asarray(sizes, dtype=np.int64) - np.bincount(owner, minlength=n)
    else:
        sizes = np.bincount(rows[ok], minlength=n)
    keep = sizes > 0
    info[f"{split}_unknown_candidates_dropped"] = int((~ok).sum())
    info[f"{split}_impressions_dropped"] = int((~keep).sum())
    if not keep.any():
        raise DataError(f"{path}: {none_known}")
    if (~ok).any() or (~keep).any():
        warn(f"{path}: dropped {int((~ok).sum())} {unknown} and {int((~keep).sum())} impressions left without "
             "candidates")
    return ok, sizes, keep


def split_dev(train: Impressions, dev: Impressions, seed: int, info: dict) -> dict[str, Impressions]:
    """The train/valid/test splits of an impressions dataset; records the protocol in `info`."""
    is_valid = np.zeros(len(dev), dtype=bool)
    is_valid[np.random.default_rng(seed).permutation(len(dev))[:len(dev) // 2]] = True
    info["protocol"] = IMPRESSIONS
    return {"train": train, "valid": dev.select(np.flatnonzero(is_valid)), "test": dev.select(np.flatnonzero(~is_valid))}
