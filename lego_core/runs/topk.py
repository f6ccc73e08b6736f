"""Top-k recommendations of every user (or a chosen few) of a run, streamed to Parquet or CSV.

The same scores as `recommend.recommend` (the run's own predictor over its item table, each user
at test time), computed for a batch of users at once: [B users x C items] blocks, C chosen so a
block stays small, a running top-k per user merged block by block. Nothing users x items is ever
held, so a million users stream in batches of `batch_size` rows written as they are ranked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lego_core.bricks.model import to_tensor
from lego_core.core.errors import LegoError, RunError
from lego_core.core.progress import redraw_seconds
from lego_core.evaluation import evaluate as ev
from lego_core.runs import recommend

BLOCK = 1 << 22  # scores x width in one [B, C, D] block of candidates (about 16 MB of float32)
FORMATS = {".parquet": "parquet", ".csv": "csv"}


def user_rows(found: recommend.Scorer, users: Any = None) -> np.ndarray:
    """Dataset rows of `users` (ids; None: every user, in the dataset's order); RunError naming
    the first unknown id."""
    if users is None:
        return np.arange(len(found.user_rows), dtype=np.int64)
    return np.array([found.row(u) for u in users], dtype=np.int64)


def seen_pairs(dataset, rows: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(batch position, item index) of every item each user clicked before test time."""
    starts = dataset.seq_offsets[rows]
    lengths = np.minimum(ends, dataset.seq_offsets[rows + 1] - starts)
    where = np.repeat(np.arange(len(rows)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return where, dataset.seq_items[np.repeat(starts, lengths) + offsets].astype(np.int64)


@torch.no_grad()
def top_items(found: recommend.Scorer, rows: np.ndarray, k: int, exclude_seen: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
    """(item indices [B, k'], scores [B, k']) of users `rows`, best first (k' = min(k, items);
    excluded items score -inf and never come before a scored one)."""
    model, dataset, items = found.model, found.dataset, found.items
    n, width = items.shape[0], items.shape[-1]
    ends = found.test_ends[rows]
    if found.users is not None:
        user = found.users[torch.from_numpy(rows)]
    else:
        user = ev.user_table(model, dataset, rows, ends, items, batch_size=len(rows))
    hist, mask = dataset.gather_histories(rows, ends, model.recipe.training.max_history)
    hist_t, mask_t = to_tensor(hist, items.device), to_tensor(mask, items.device)
    history = items[hist_t]
    seen_at, seen_item = seen_pairs(dataset, rows, ends) if exclude_seen else (np.zeros(0, int),) * 2
    keep = min(int(k), n)
    best_scores = torch.full((len(rows), 0), -np.inf, dtype=torch.float64)
    best_items = torch.zeros((len(rows), 0), dtype=torch.long)
    chunk = max(1, BLOCK // max(1, len(rows) * width))
    for start in range(0, n, chunk):
        block = items[start:start + chunk]
        candidates = block.unsqueeze(0).expand(len(rows), -1, -1)
        scores = model.score(user, candidates, history, mask_t).float().cpu().double()
        inside = (seen_item >= start) & (seen_item < start + len(block))
        scores[torch.from_numpy(seen_at[inside]), torch.from_numpy(seen_item[inside] - start)] = -np.inf
        ids = torch.arange(start, start + len(block)).expand(len(rows), -1)
        merged_scores, merged_items = torch.cat([best_scores, scores], 1), torch.cat([best_items, ids], 1)
        # stable by item index within equal scores, as recommend.recommend's argsort
        order = np.argsort(-merged_scores.numpy(), axis=1, kind="stable")[:, :keep]
        order = torch.from_numpy(order)
        best_scores, best_items = merged_scores.gather(1, order), merged_items.gather(1, order)
    return best_items.numpy(), best_scores.numpy()


def batches(run, k: int = 10, users: Any = None, exclude_seen: bool = True, batch_size: int = 1024,
            progress: bool = True, dataset: Any = None) -> Iterator[pd.DataFrame]:
    """Frames of (user_id, rank, item_id, score), `batch_size` users each, in the order of `users`
    (default: every user of the run's dataset); seen items (the history before test time) excluded
    unless `exclude_seen` is False; users with fewer unseen items than k get fewer rows."""
    if k < 1:
        raise LegoError(f"k must be at least 1 (got {k})")
    found = recommend.scorer(run, dataset)
    rows = user_rows(found, users)
    ids = np.array(found.item_ids, dtype=object)
    names = np.array(list(found.user_rows), dtype=object)
    bar = tqdm(total=len(rows), desc="recommend", unit="user", disable=not progress, mininterval=redraw_seconds())
    with bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            top, scores = top_items(found, chunk, k, exclude_seen)
            valid = np.isfinite(scores)
            where = np.nonzero(valid)
            yield pd.DataFrame({"user_id": names[chunk][where[0]].astype(str), "rank": where[1] + 1,
                                "item_id": ids[top[where]].astype(str), "score": scores[where]})
            bar.update(len(chunk))


def write(run, out: str | Path, k: int = 10, users: Any = None, exclude_seen: bool = True,
          batch_size: int = 1024, progress: bool = True) -> dict:
    """Stream the top-k of `users` into `out` (.parquet or .csv, by its suffix), written to a
    temporary name beside it and renamed when complete. Returns {"path", "users", "rows"}."""
    out = Path(out)
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise LegoError(f"-o {out}: name a .parquet or .csv file")
    if not out.parent.is_dir():
        raise LegoError(f"-o {out}: folder {out.parent} does not exist; create it first")
    partial = out.with_name(f".{out.name}.tmp")
    count = rows = 0
    writer, started = None, False
    try:
        for frame in batches(run, k, users, exclude_seen, batch_size, progress):
            if kind == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(frame, preserve_index=False)
                writer = writer or pq.ParquetWriter(partial, table.schema)
                writer.write_table(table)
            else:
                frame.to_csv(partial, mode="a" if started else "w", header=not started, index=False)
            started = True
            count += frame["user_id"].nunique() if len(frame) else 0
            rows += len(frame)
        if writer is not None:
            writer.close()
            writer = None
        elif kind == "parquet":  # no user at all: an empty table with the columns
            pd.DataFrame({"user_id": [], "rank": [], "item_id": [], "score": []}).to_parquet(partial)
        elif not started:
            partial.write_text("user_id,rank,item_id,score\n", encoding="utf-8")
        partial.replace(out)
    except OSError as exc:
        raise RunError(f"-o {out}: cannot write ({exc.strerror or exc}); choose another place") from None
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    return {"path": str(out), "users": count, "rows": rows}


def read_users(spec: str) -> list[str]:
    """`--users`: a file (one id a line, or a .csv/.parquet with a user_id column) or ids joined by commas."""
    path = Path(spec)
    if path.is_file():
        if path.suffix.lower() in (".csv", ".parquet"):
            frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, dtype=str)
            if "user_id" not in frame.columns:
                raise LegoError(f"--users {spec}: needs a user_id column (has {list(frame.columns)[:5]})")
            return frame["user_id"].astype(str).tolist()
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [part.strip() for part in spec.split(",") if part.strip()]
