"""After training: what the app and later sessions read from a run folder, computed once from the
best weights: the item and user embedding tables, and the popularity floor every run is judged by.

The tables record where they came from (`embeddings/source.json`: best.pt's and the tables' size
and mtime), so `lego_core.runs.recommend` scores with them instead of encoding every item and user
again, and recomputes only when they are missing, damaged or written from other weights."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lego_core.core.errors import LegoError
from lego_core.core.fileio import atomic_write_json
from lego_core.data.io import warn
from lego_core.evaluation import evaluate as ev

SOURCE = "source.json"
TABLES = ("items.npy", "item_ids.json", "users.npy", "user_ids.json")


def _stamp(path: Path) -> list[int] | None:
    """[size, mtime_ns] of a file (None when missing): changes whenever it is rewritten."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def source_stamp(run) -> dict:
    """What the saved tables must have been written from to be current: best.pt and the tables."""
    return {"best.pt": _stamp(run.checkpoint_path("best")),
            **{name: _stamp(run.embeddings_dir / name) for name in TABLES}}


@torch.no_grad()
def save_tables(run, model, dataset, batch_size: int = 512) -> None:
    """Every item's vector and every user's vector at test time into `run`'s embeddings folder,
    then the stamp of the checkpoint `model` holds (best.pt) that makes them current."""
    model.eval()
    source = run.embeddings_dir / SOURCE
    source.unlink(missing_ok=True)  # tables being rewritten are stale until their stamp is back
    items = ev.item_table(model, batch_size)
    users, ends = ev.test_user_states(dataset)
    table = ev.user_table(model, dataset, users, ends, items, batch_size)
    run.save_embeddings(dataset.items["item_id"].astype(str).tolist(), items.cpu().numpy(),
                        [str(u) for u in dataset.users], table.cpu().numpy())
    atomic_write_json(source, source_stamp(run))


def current_tables(run, dataset) -> tuple[np.ndarray, np.ndarray] | None:
    """(items [N, D], users [U, ...]) saved from the run's present best.pt for `dataset`'s items and
    users in order; None when missing or stale. A damaged table warns in one line and is None."""
    try:
        recorded = json.loads((run.embeddings_dir / SOURCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if recorded != source_stamp(run) or recorded.get("best.pt") is None:
        return None
    try:
        item_ids, items = run.item_embeddings()
        user_ids, users = run.user_embeddings()
    except LegoError as exc:
        warn(f"{exc}; the scores are computed from the model instead")
        return None
    if item_ids != dataset.items["item_id"].astype(str).tolist() or user_ids != [str(u) for u in dataset.users]:
        return None
    return items, users
