"""Lookups every page needs, built once per loaded dataset and kept while it lives: the item
frame (texts), user ids as text, user id -> row, the users with impressions in a split. At
MIND-large size (160k items, a million users) each takes a noticeable part of a second to build,
and every rerun, user picked or map drawn needs them again; the app holds one loaded dataset per
name (pages/_common `_load`), so they are built once per server process. Values are shared:
callers must not modify them."""
from __future__ import annotations

import threading
import weakref
from typing import Any, Callable

import numpy as np
import pandas as pd

from lego_core.data.schema import Dataset
from lego_core.data.text import default_fields, item_texts

_HELD: dict[int, dict[str, Any]] = {}  # id(dataset) -> {name: value}; dropped with the dataset
_LOCK = threading.Lock()


def once(dataset: Any, name: str, compute: Callable[[], Any]) -> Any:
    """`compute()` the first time `name` is asked of this dataset object, the same value after."""
    key = id(dataset)
    with _LOCK:
        held = _HELD.get(key)
        if held is not None and name in held:
            return held[name]
    value = compute()  # outside the lock: sessions asking other things do not wait on it
    with _LOCK:
        if key not in _HELD:
            _HELD[key] = {}
            weakref.finalize(dataset, _HELD.pop, key, None)
        return _HELD[key].setdefault(name, value)


def item_frame(dataset: Dataset) -> pd.DataFrame:
    """One row per item: item_id, text (`data.text.item_texts`; the id when an item has none) and
    category ("" when none). Built once per dataset (`memo`): do not modify it."""
    return once(dataset, "item_frame", lambda: _item_frame(dataset))


def item_lookup(dataset: Dataset) -> pd.DataFrame:
    """`item_frame` indexed by item_id (first row of a repeated id): text and category of an id."""
    return once(dataset, "item_lookup",
                     lambda: item_frame(dataset).drop_duplicates("item_id").set_index("item_id"))


def _item_frame(dataset: Dataset) -> pd.DataFrame:
    items = dataset.items
    ids = items["item_id"].astype(str).to_numpy()
    fields = [f for f in default_fields(dataset) if f in items.columns]
    texts = item_texts(dataset, fields) if fields else [""] * len(items)
    category = (items[dataset.category_field].astype(str) if dataset.category_field in items.columns
                else pd.Series([""] * len(items), index=items.index))
    return pd.DataFrame({"item_id": ids, "text": [t or i for t, i in zip(texts, ids)],
                         "category": category.to_numpy()})


def user_ids(dataset: Dataset) -> pd.Series:
    """Every user id as text, in dataset order (built once per dataset)."""
    return once(dataset, "user_ids", lambda: pd.Series(dataset.users.astype(str), dtype=object))


def user_index(dataset: Dataset, user_id: Any) -> int:
    """Index of a user id in the dataset (a dict built once per dataset); KeyError with the id when unknown."""
    rows = once(dataset, "user_rows",
                     lambda: dict(zip(user_ids(dataset).to_numpy()[::-1], range(len(dataset.users) - 1, -1, -1))))
    row = rows.get(str(user_id))
    if row is None:
        raise KeyError(f"user {user_id!r} is not in dataset {dataset.name}")
    return row


def _with_impressions(dataset: Dataset, split: str) -> np.ndarray:
    def compute() -> np.ndarray:
        keep = np.zeros(len(dataset.users), dtype=bool)
        keep[dataset.splits[split].users] = True
        return keep

    return once(dataset, f"users-in-{split}", compute)


def find_users(dataset: Dataset, query: str = "", limit: int = 200, split: str | None = None) -> list[str]:
    """User ids containing `query` (all users when empty), at most `limit`, in dataset order;
    with `split`, only users who have impressions in that split (e.g. "test"). A million users are
    searched in a vectorised pass (a fraction of a second); only the `limit` matches go to a widget."""
    users = user_ids(dataset)
    keep = _with_impressions(dataset, split) if split and split in dataset.splits else None
    query = query.strip()
    if query:
        found = users.str.contains(query, regex=False).to_numpy()
        keep = found if keep is None else keep & found
    chosen = users if keep is None else users[keep]
    return chosen.iloc[:limit].tolist()
