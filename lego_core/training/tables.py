"""After training: what the app and later sessions read from a run folder, computed once from the
best weights: the item and user embedding tables, and the popularity floor every run is judged by.
(Recommendations are scored on demand by `lego_core.runs.recommend`, not exported.)"""
from __future__ import annotations

import torch

from lego_core.evaluation import evaluate as ev


@torch.no_grad()
def save_tables(run, model, dataset, batch_size: int = 512) -> None:
    """Every item's vector and every user's vector at test time into `run`'s embeddings folder."""
    model.eval()
    items = ev.item_table(model, batch_size)
    users, ends = ev.test_user_states(dataset)
    table = ev.user_table(model, dataset, users, ends, items, batch_size)
    run.save_embeddings(dataset.items["item_id"].astype(str).tolist(), items.cpu().numpy(),
                        [str(u) for u in dataset.users], table.cpu().numpy())
