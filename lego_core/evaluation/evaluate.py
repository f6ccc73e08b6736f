"""Cached and uncached evaluation.

Cached: every item is encoded once into an item table, every user state (user, history length)
once into a user table, and impressions are scored from the two tables. Uncached: each impression
encodes its own history and candidates, the baseline the cache is measured against. Both give the
same metrics on the same model.

Sharded (`sharded=True` inside a torch.distributed group, e.g. under torchrun): every rank encodes
and scores every world-th chunk of the very chunks one process would run, the tables are summed
across ranks (each row is encoded by one rank, zero on the others: the sum is exact) and the scores
reduced to rank 0, which computes the metrics: they equal the one-process ones bit for bit.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from lego_core.evaluation import metrics as metric_fns
from lego_core.data.batches import impression_batches, padded_candidates
from lego_core.data.cold import cold_impressions
from lego_core.data.schema import Dataset, Impressions, flat_ranges
from lego_core.bricks.model import Legommender, to_tensor
from lego_core.core.progress import redraw_seconds

REPORTED = metric_fns.DEFAULT_METRICS  # what every evaluation reports


def _device(model: Legommender) -> torch.device:
    return next(model.parameters()).device


def _shard(sharded: bool) -> tuple[int, int]:
    """(rank, world) of this process when `sharded` and a process group of 2+ is up, else (0, 1)."""
    if sharded and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mine(chunks: list, shard: tuple[int, int]) -> list:
    """This rank's chunks: every world-th, from its rank on."""
    return chunks[shard[0]::shard[1]]


def _assemble(parts, total: int, shard: tuple[int, int], device: torch.device) -> torch.Tensor:
    """The [total, ...] table from the (start, rows) chunks `parts` yields, each copied in as it
    comes: kept in a list until one final cat, the chunks grew the heap by ~18 MB each (allocator
    fragmentation: 7.2 GB peak for the 43 MB user table of MIND-large's valid split). Sharded: each rank
    fills its chunks into zeros and the tables are summed (every row from one rank: exact)."""
    table = None
    for start, rows in parts:
        if table is None:
            table = torch.zeros((total, *rows.shape[1:]), device=device)
        table[start:start + len(rows)] = rows
    if shard[1] > 1:
        tail = [tuple(table.shape[1:]) if table is not None else None]
        dist.broadcast_object_list(tail, src=0)  # rank 0 holds chunk 0 (total > 0)
        if table is None:
            table = torch.zeros((total, *tail[0]), device=device)
        dist.all_reduce(table)
    return table


@torch.no_grad()
def item_table(model: Legommender, batch_size: int = 512, progress: bool = False,
               sharded: bool = False) -> torch.Tensor:
    """[N, D] vectors of every item, each encoded once (by one rank when `sharded`; every rank
    gets the whole table)."""
    device, n, shard = _device(model), model.num_items, _shard(sharded)

    def parts():
        for start in tqdm(_mine(list(range(0, n, batch_size)), shard), desc="encode items", disable=not progress,
                          leave=False, mininterval=redraw_seconds()):
            yield start, model.encode_items(torch.arange(start, min(start + batch_size, n), device=device)).float()
    return _assemble(parts(), n, shard, device)


def _encode_in_chunks(model: Legommender, ids: torch.Tensor, chunk: int) -> torch.Tensor:
    """Item vectors for `ids` (repeats included), at most `chunk` items per forward pass."""
    return torch.cat([model.encode_items(ids[i:i + chunk]).float() for i in range(0, len(ids), chunk)])


def user_states(imps: Impressions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (user, history_end) pairs of a split: (users, ends, state index of each impression)."""
    pairs = np.stack([imps.users, imps.history_end], axis=1)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return unique[:, 0], unique[:, 1], inverse.reshape(-1)


@torch.no_grad()
def user_table(model: Legommender, dataset: Dataset, users: np.ndarray, ends: np.ndarray,
               items: torch.Tensor, batch_size: int = 512, progress: bool = False,
               sharded: bool = False) -> torch.Tensor:
    """[S, D] (or [S, K, D]) user vectors from the item table, each state encoded once (`sharded`
    as in item_table)."""
    device, h, shard = items.device, model.recipe.training.max_history, _shard(sharded)
    if not len(users):
        return torch.zeros(0, items.shape[1], device=device)

    def parts():
        for start in tqdm(_mine(list(range(0, len(users), batch_size)), shard), desc="encode users",
                          disable=not progress, leave=False, mininterval=redraw_seconds()):
            u, e = users[start:start + batch_size], ends[start:start + batch_size]
            hist, mask = dataset.gather_histories(u, e, h)
            hist_t, mask_t = to_tensor(hist, device), to_tensor(mask, device)
            yield start, model.encode_users(items[hist_t], mask_t, to_tensor(u, device)).float()
    return _assemble(parts(), len(users), shard, device)


@torch.no_grad()
def score_split(model: Legommender, dataset: Dataset, split: str, cached: bool = True,
                batch_size: int = 512, progress: bool = False, sharded: bool = False) -> np.ndarray | None:
    """Logits for every candidate row of a split, aligned with `dataset.splits[split].items`. With
    `sharded` in a group of 2+: each rank scores its share, rank 0 gets them all, others None."""
    was_training = model.training
    model.eval()
    imps, device, h = dataset.splits[split], _device(model), model.recipe.training.max_history
    shard = _shard(sharded)
    scores = np.zeros(len(imps.items), dtype=np.float64)
    if cached:
        items = item_table(model, batch_size, progress, sharded)
        users, ends, state = user_states(imps)
        table = user_table(model, dataset, users, ends, items, batch_size, progress, sharded)
    for rows in tqdm(_mine(impression_batches(imps, batch_size), shard), desc=f"score {split}",
                     disable=not progress, leave=False, mininterval=redraw_seconds()):
        cands, valid, flat = padded_candidates(imps, rows)
        cands_t = to_tensor(cands, device)
        hist, mask = dataset.gather_histories(imps.users[rows], imps.history_end[rows], h)
        hist_t, mask_t = to_tensor(hist, device), to_tensor(mask, device)
        if cached:
            user = table[to_tensor(state[rows], device)]
            cand_vecs, hist_vecs = items[cands_t], items[hist_t]
        else:  # every impression encodes its own history and candidates
            b, c = cands.shape
            cand_vecs = _encode_in_chunks(model, cands_t.reshape(-1), batch_size).view(b, c, -1)
            hist_vecs = _encode_in_chunks(model, hist_t.reshape(-1), batch_size).view(b, h, -1)
            user = model.encode_users(hist_vecs, mask_t, to_tensor(imps.users[rows], device)).float()
        logits = model.score(user, cand_vecs, hist_vecs, mask_t).float()
        scores[flat] = logits.cpu().numpy()[valid]
    model.train(was_training)
    if shard[1] == 1:
        return scores
    total = torch.from_numpy(scores)  # every row scored on one rank, exact zeros on the others
    if dist.get_backend() == "nccl":
        total = total.to(device)
    dist.reduce(total, dst=0)
    return total.cpu().numpy() if shard[0] == 0 else None


def evaluate(model: Legommender, dataset: Dataset, split: str, cached: bool = True, batch_size: int = 512,
             progress: bool = False, metrics: tuple[str, ...] = REPORTED, parts: bool = False,
             sharded: bool = False) -> dict | None:
    """Ranking metrics of the model on one split (grouped by impression). With `parts`:
    {"all": ..., "warm": ..., "cold": ...} (see `metrics_by_part`). With `sharded`, every rank of
    the process group must call it: the work is split, rank 0 returns the metrics, the others None."""
    scores = score_split(model, dataset, split, cached, batch_size, progress, sharded)
    if scores is None:
        return None
    return metrics_by_part(dataset, split, scores, metrics) if parts else \
        metric_fns.compute(dataset.splits[split].labels, scores, dataset.splits[split].group, metrics)


def evaluate_scores(dataset: Dataset, split: str, item_scores: np.ndarray,
                    metrics: tuple[str, ...] = REPORTED, parts: bool = False) -> dict:
    """Metrics of a user-independent scorer (e.g. popularity) on one split (`parts` as in evaluate)."""
    imps = dataset.splits[split]
    scores = item_scores[imps.items].astype(np.float64)
    return metrics_by_part(dataset, split, scores, metrics) if parts else \
        metric_fns.compute(imps.labels, scores, imps.group, metrics)


def metrics_by_part(dataset: Dataset, split: str, scores: np.ndarray,
                    metrics: tuple[str, ...] = REPORTED) -> dict:
    """{"all": metrics of every impression, "warm"/"cold": of those whose clicked item training saw /
    never saw (`lego_core.data.cold`)}; each with its `impressions` count (warm + cold = all). A
    part without impressions is left out."""
    imps = dataset.splits[split]
    flags = cold_impressions(dataset, split)
    out = {}
    for name, rows in (("all", np.arange(len(imps))), ("warm", np.flatnonzero(~flags)), ("cold", np.flatnonzero(flags))):
        if not len(rows):
            continue
        sizes = imps.sizes[rows]
        flat = flat_ranges(imps.offsets[rows], sizes)
        out[name] = {**metric_fns.compute(imps.labels[flat], scores[flat], np.repeat(np.arange(len(rows)), sizes),
                                          metrics), "impressions": int(len(rows))}
    return out


def test_user_states(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each user's state at test time: (users 0..U-1, history length before their first test
    impression, or their whole sequence when they have none). Used for the saved user table."""
    ends = np.diff(dataset.seq_offsets).copy()
    imps = dataset.splits.get("test")
    if imps is not None and len(imps):
        np.minimum.at(ends, imps.users, imps.history_end)
    return np.arange(dataset.num_users), ends


def split_parts(split: str, parts: dict) -> dict:
    """{"all", "warm", "cold"} of a split as the keys metrics.json uses: test, test_warm, test_cold."""
    return {split if name == "all" else f"{split}_{name}": values for name, values in parts.items()}
