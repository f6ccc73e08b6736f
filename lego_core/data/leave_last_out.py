"""The leave-last-out protocol for implicit-feedback logs (MovieLens, generic tables).

Every interaction is a click. Per user, clicks are sorted by (timestamp, item index), stable:
the last is `test`, the one before is `valid`, the rest are training positives. The user's
sequence is all clicks in time order and each impression sees only the clicks before it
(`history_end`), so nothing leaks:

- train: one impression per training click at sequence position t >= 1, candidates [item],
  labels [1], history_end t. The first click (t = 0) has no history, so it is not a training
  impression; it still appears in later histories.
- valid / test: the positive plus `negatives` items the user never interacted with (uniform,
  without replacement, seeded), in a seeded random order; history_end n-2 (valid), n-1 (test).

Users with fewer than 3 clicks cannot give a train/valid/test split and are dropped (counted in
`info` with a warning). A repeated (user, item) click keeps only its earliest occurrence, so the
held-out item never sits in its own history.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lego_core.data.arrays import index_of, natural_order, offsets_from_sizes
from lego_core.data.io import int_option, warn
from lego_core.data.schema import LEAVE_LAST_OUT, Dataset, Impressions
from lego_core.core.errors import DataError

MIN_CLICKS = 3
MAX_NEGATIVES = 10_000  # sampled negatives per valid/test impression (memory: users x negatives)


def check_options(negatives, seed, what: str) -> tuple[int, int]:
    """(negatives, seed) as ints, or DataError naming the option (readers check before reading)."""
    return int_option(negatives, "negatives", 0, MAX_NEGATIVES, what), int_option(seed, "seed", 0, 2**63 - 1, what)


def split_log(name: str, items: pd.DataFrame, users: np.ndarray, item_ids: np.ndarray, times: np.ndarray,
              *, negatives: int = 99, seed: int = 0, text_fields: list[str] | None = None,
              category_field: str | None = None, info: dict | None = None,
              source: str = "interactions") -> Dataset:
    """Build a Dataset from a click log (user id, item id, unix time per click); see module doc."""
    negatives, seed = check_options(negatives, seed, name)
    info = dict(info or {})
    known = pd.Index(items["item_id"].to_numpy(dtype=object))
    item_idx = index_of(item_ids, known)
    users = np.asarray(users, dtype=object)
    times = np.asarray(times, dtype=np.int64)

    unknown = item_idx < 0
    info["unknown_items_dropped"] = int(unknown.sum())
    if unknown.all():
        raise DataError(f"{source}: none of the {len(item_idx)} interactions names an item of the items "
                        f"table (e.g. {item_ids[0]!r}); check that both files use the same item ids")
    if unknown.any():
        sample = sorted({str(v) for v in np.asarray(item_ids, dtype=object)[unknown][:5]})
        warn(f"{source}: dropped {int(unknown.sum())} interactions naming unknown items (e.g. {sample})")
    users, item_idx, times = users[~unknown], item_idx[~unknown], times[~unknown]

    codes, uniques = pd.factorize(users)
    order = np.lexsort((item_idx, times, codes))  # stable: (user, time, item)
    codes, item_idx, times = codes[order], item_idx[order], times[order]

    keys = codes.astype(np.int64) * len(items) + item_idx
    _, first = np.unique(keys, return_index=True)
    keep = np.zeros(len(keys), dtype=bool)
    keep[first] = True  # earliest occurrence of each (user, item)
    info["duplicates_dropped"] = int((~keep).sum())
    if (~keep).any():
        warn(f"{source}: dropped {int((~keep).sum())} repeated (user, item) clicks, keeping the earliest")
    codes, item_idx, times = codes[keep], item_idx[keep], times[keep]

    counts = np.bincount(codes, minlength=len(uniques))
    short = counts < MIN_CLICKS
    info["short_users_dropped"] = int(short.sum())
    if short.all():
        raise DataError(f"{source}: no user has {MIN_CLICKS} or more clicks on known items; leave-last-out "
                        f"needs at least {MIN_CLICKS} per user (train, valid, test)")
    if short.any():
        warn(f"{source}: dropped {int(short.sum())} users with fewer than {MIN_CLICKS} clicks")

    # Users in natural id order; rows re-sorted by (new user index, time, item).
    kept_users = np.flatnonzero(~short)
    user_order = kept_users[natural_order(uniques[kept_users])]
    new_code = np.full(len(uniques), -1, dtype=np.int64)
    new_code[user_order] = np.arange(len(user_order))
    rows = new_code[codes] >= 0
    codes, item_idx, times = new_code[codes][rows], item_idx[rows], times[rows]
    order = np.lexsort((item_idx, times, codes))
    codes, item_idx, times = codes[order], item_idx[order], times[order]

    counts = np.bincount(codes, minlength=len(user_order))
    seq_offsets = offsets_from_sizes(counts)
    pos = np.arange(len(codes)) - seq_offsets[codes]
    n = counts[codes]
    rng = np.random.default_rng(seed)

    train_rows = np.flatnonzero((pos >= 1) & (pos <= n - 3))
    m = len(train_rows)
    train = Impressions(ids=np.arange(m, dtype=np.int64), users=codes[train_rows], times=times[train_rows],
                        history_end=pos[train_rows], offsets=np.arange(m + 1, dtype=np.int64),
                        items=item_idx[train_rows], labels=np.ones(m, dtype=np.int8))
    seen = np.sort(codes * len(items) + item_idx)
    splits = {"train": train}
    next_id = m
    for split, back in (("valid", 2), ("test", 1)):
        rows = seq_offsets[1:] - back
        imps = _eval_impressions(codes[rows], item_idx[rows], times[rows], counts - back, seen,
                                 len(items), negatives, rng, next_id)
        splits[split] = imps
        next_id += len(imps)

    info.update({"protocol": LEAVE_LAST_OUT, "negatives": negatives, "seed": int(seed),
                 "first_clicks_not_trained": int(len(user_order)),
                 "note": "each user's first click has no history and is not a train impression "
                         "(it stays in later histories); last click = test, second to last = valid"})
    return Dataset(name=name, items=items.reset_index(drop=True), users=np.asarray(uniques[user_order], dtype=object),
                   seq_offsets=seq_offsets, seq_items=item_idx.astype(np.int64), splits=splits,
                   text_fields=list(text_fields or []), category_field=category_field, info=info)


def _eval_impressions(users: np.ndarray, positives: np.ndarray, times: np.ndarray, history_end: np.ndarray,
                      seen: np.ndarray, n_items: int, negatives: int, rng: np.random.Generator,
                      first_id: int) -> Impressions:
    """One impression per user: its positive plus sampled unseen negatives, shuffled."""
    neg = sample_unseen(users, seen, n_items, negatives, rng)  # [R, N], -1 = none left
    cands = np.concatenate([positives[:, None], neg], axis=1)
    labels = np.zeros(cands.shape, dtype=np.int8)
    labels[:, 0] = 1
    present = cands >= 0
    keys = np.where(present, rng.random(cands.shape), 2.0)  # absent slots sort last
    perm = np.argsort(keys, axis=1, kind="stable")
    cands = np.take_along_axis(cands, perm, axis=1)
    labels = np.take_along_axis(labels, perm, axis=1)
    present = np.take_along_axis(present, perm, axis=1)
    r = len(users)
    return Impressions(ids=np.arange(first_id, first_id + r, dtype=np.int64), users=users.astype(np.int64),
                       times=times.astype(np.int64), history_end=history_end.astype(np.int64),
                       offsets=offsets_from_sizes(present.sum(axis=1)), items=cands[present].astype(np.int64),
                       labels=labels[present])


def sample_unseen(users: np.ndarray, seen: np.ndarray, n_items: int, n: int,
                  rng: np.random.Generator) -> np.ndarray:
    """[R, n] distinct items per row drawn uniformly from items the row's user never clicked.

    `seen` is the sorted array of user * n_items + item keys. Vectorized rejection sampling
    (draw a block per row, drop seen and repeated items, keep the first n valid); rows still
    short after a few rounds get an exact draw over a dense random-key matrix. Rows whose user
    has fewer than n unseen items get all of them, padded with -1.
    """
    r = len(users)
    out = np.full((r, n), -1, dtype=np.int64)
    if n == 0 or r == 0:
        return out
    users = np.asarray(users, dtype=np.int64)
    seen_count = np.bincount(seen // n_items, minlength=int(users.max()) + 1)[users]
    want = np.minimum(n, n_items - seen_count)
    pending = np.flatnonzero(want > 0)
    for _ in range(3):
        if not len(pending):
            break
        width = 2 * n + 16
        draw = rng.integers(0, n_items, size=(len(pending), width))
        valid = ~_is_seen(users[pending, None] * n_items + draw, seen)
        srt = np.argsort(draw, axis=1, kind="stable")
        sd = np.take_along_axis(draw, srt, axis=1)
        dup_sorted = np.zeros_like(sd, dtype=bool)
        dup_sorted[:, 1:] = sd[:, 1:] == sd[:, :-1]  # later copies of a repeated draw
        dup = np.empty_like(dup_sorted)
        np.put_along_axis(dup, srt, dup_sorted, axis=1)
        valid &= ~dup
        rank = np.cumsum(valid, axis=1)
        done = rank[:, -1] >= want[pending]
        rows = pending[done]
        take = valid[done] & (rank[done] <= want[rows][:, None])
        ri, ci = np.nonzero(take)
        col = rank[done][ri, ci] - 1
        out[rows[ri], col] = draw[done][ri, ci]
        pending = pending[~done]
    if len(pending):
        _dense_fill(out, pending, users, seen, n_items, want, rng)
    return out


def _is_seen(keys: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Membership of keys in the sorted array `seen`, vectorized."""
    if not len(seen):
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(seen, keys), len(seen) - 1)
    return seen[pos] == keys


def _dense_fill(out: np.ndarray, rows: np.ndarray, users: np.ndarray, seen: np.ndarray, n_items: int,
                want: np.ndarray, rng: np.random.Generator) -> None:
    """Exact sampling for rows the rejection rounds could not fill: smallest random keys among unseen."""
    chunk = max(1, 4_000_000 // max(n_items, 1))
    n = out.shape[1]
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        keys = rng.random((len(part), n_items))
        keys[_is_seen(users[part, None] * n_items + np.arange(n_items)[None, :], seen)] = np.inf
        best = np.argsort(keys, axis=1, kind="stable")[:, :n]
        ok = np.arange(best.shape[1])[None, :] < want[part][:, None]
        out[part, :best.shape[1]] = np.where(ok, best, -1)
