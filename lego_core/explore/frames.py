"""Plot- and table-ready data for the app, computed from datasets and runs (no UI code here).

The Streamlit pages only render what these functions return, so everything that touches arrays
(lookups, joins of recommendations with item text, run tables) is testable without a browser.
Item maps (PCA, UMAP) live in `lego_core.explore.maps`.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from lego_core.data.schema import Dataset
from lego_core.explore.lookups import find_users, item_frame, item_lookup, once, user_ids, user_index  # noqa: F401



# ---- text -------------------------------------------------------------------------------
def plain(text: Any) -> str:
    """Escape item text for plotly hover labels, which interpret a few HTML tags: shown as text."""
    return html.escape(str(text), quote=False)


# ---- dataset plots ----------------------------------------------------------------------
def dataset_counts(dataset: Dataset) -> dict:
    """Headline counts of a dataset (items, users, clicks, impressions per split)."""
    return dataset.summary()


def history_lengths(dataset: Dataset) -> pd.DataFrame:
    """Per user: the number of clicked items in their sequence (column `history_length`)."""
    return pd.DataFrame({"user_id": dataset.users.astype(str), "history_length": np.diff(dataset.seq_offsets)})


def category_counts(dataset: Dataset) -> pd.DataFrame:
    """Items per category, most frequent first (empty frame when the dataset has no category)."""
    if not dataset.category_field or dataset.category_field not in dataset.items.columns:
        return pd.DataFrame({"category": [], "items": []})
    counts = dataset.items[dataset.category_field].astype(str).value_counts()
    return pd.DataFrame({"category": counts.index.to_numpy(), "items": counts.to_numpy()})


def table_preview(path: str | Path, rows: int = 5) -> pd.DataFrame:
    """The first rows of a user's items/interactions table (CSV/TSV/Parquet), to choose its columns."""
    from lego_core.data.io import read_table

    return read_table(Path(path)).head(rows)


def users_frame(dataset: Dataset, limit: int | None = None) -> pd.DataFrame:
    """Preview of users: id, history length, impressions per split (counted once per dataset: a
    million users take a second)."""
    def count() -> pd.DataFrame:
        frame = history_lengths(dataset)
        for split, imps in dataset.splits.items():
            frame[f"{split}_impressions"] = np.bincount(imps.users, minlength=dataset.num_users)
        return frame
    frame = once(dataset, "users_frame", count)
    return frame.head(limit).copy() if limit else frame.copy()


def impressions_frame(dataset: Dataset, split: str, limit: int = 200) -> pd.DataFrame:
    """Preview of one split's first impressions with original ids and click counts."""
    imps = dataset.splits[split]
    head = imps.select(np.arange(min(limit, len(imps))))
    frame = head.to_frame(dataset)
    frame["clicked"] = [[c for c, lab in zip(cands, labels) if lab] for cands, labels in
                        zip(frame["candidates"], frame["labels"])]
    frame["size"] = frame["candidates"].map(len)
    return frame[["impression_id", "user", "time", "history_length", "size", "clicked", "candidates"]]


# ---- users ------------------------------------------------------------------------------
def history_end(dataset: Dataset, user_id: Any, split: str = "test") -> int | None:
    """How many of the user's clicks precede their `split` impressions (None: no such impression)."""
    imps = dataset.splits.get(split)
    if imps is None or not len(imps):
        return None
    rows = np.flatnonzero(imps.users == user_index(dataset, user_id))
    return int(imps.history_end[rows].max()) if len(rows) else None


def user_history(dataset: Dataset, user_id: Any, split: str | None = "test") -> pd.DataFrame:
    """The user's clicks, oldest first, as the model saw them before their `split` impressions
    (all clicks when None or when the user has none): position (1 = oldest), item_id, text, category."""
    items = item_frame(dataset)
    end = history_end(dataset, user_id, split) if split else None
    seq = dataset.history(user_index(dataset, user_id), end)
    out = items.iloc[seq].reset_index(drop=True)
    out.insert(0, "position", np.arange(1, len(out) + 1))
    return out


def test_clicks(dataset: Dataset, user_id: Any, split: str = "test") -> list[str]:
    """Item ids the user clicked in `split` impressions (the held-out truth)."""
    imps = dataset.splits.get(split)
    if imps is None or not len(imps):
        return []
    rows = np.flatnonzero(imps.users == user_index(dataset, user_id))
    if not len(rows):
        return []
    sub = imps.select(rows)
    ids = dataset.items["item_id"].astype(str).to_numpy()
    return ids[sub.items[sub.labels.astype(bool)]].tolist()


def test_candidates(dataset: Dataset, user_id: Any, split: str = "test") -> list[str]:
    """Item ids shown to the user in `split` impressions."""
    imps = dataset.splits.get(split)
    if imps is None or not len(imps):
        return []
    sub = imps.select(np.flatnonzero(imps.users == user_index(dataset, user_id)))
    return dataset.items["item_id"].astype(str).to_numpy()[sub.items].tolist()


def recommendations(run: Any, dataset: Dataset, user_id: Any, k: int = 10, exclude_history: bool = True,
                    scorer: Callable | None = None) -> pd.DataFrame:
    """Top-k items of `run` for a user joined with item text, plus whether the user clicked them in
    the test impressions: columns rank, item_id, score, text, category, clicked_in_test. Scores
    come from the run's model on this `dataset` (`recommend.recommend`) unless another
    `scorer(run, user_id, k=, exclude=)` is given."""
    from lego_core.runs import recommend

    clicked = set(test_clicks(dataset, user_id))
    exclude = None
    if exclude_history:  # items seen before the test impressions; the test clicks stay rankable
        exclude = [i for i in user_history(dataset, user_id)["item_id"] if i not in clicked]
    if scorer is None:
        recs = recommend.recommend(run, str(user_id), k=k, exclude=exclude, dataset=dataset)
    else:
        recs = scorer(run, str(user_id), k=k, exclude=exclude)
    items = item_lookup(dataset)
    recs["item_id"] = recs["item_id"].astype(str)
    recs = recs.join(items, on="item_id")
    recs["clicked_in_test"] = recs["item_id"].isin(clicked)
    cold = set(items.index[dataset.cold]) if dataset.cold is not None else set()
    recs["cold"] = recs["item_id"].isin(cold)  # never seen in training: scored from content alone
    return recs[["rank", "item_id", "score", "text", "category", "clicked_in_test", "cold"]]


# ---- runs -------------------------------------------------------------------------------
def _recipe_parts(run: Any) -> dict:
    try:
        recipe = run.recipe()
    except Exception as exc:  # a damaged run still gets a row, with the reason
        return {"recipe": f"unreadable: {exc}"}
    data = recipe.model_dump(mode="json") if hasattr(recipe, "model_dump") else dict(recipe or {})
    training = data.get("training") or {}
    out = {"recipe": data.get("name", ""), "dataset": (data.get("dataset") or {}).get("name", "")}
    for kind in ("content", "behavior", "predictor"):
        out[kind] = (data.get(kind) or {}).get("name", "")
    for key in ("dim", "epochs", "batch_size", "lr"):
        if key in training:
            out[key] = training[key]
    return out


def run_row(run: Any) -> dict:
    """One run as a flat record: id, state, progress, recipe summary, test metrics, time, params."""
    status = run.status()
    row = {"run_id": run.id, "state": status.get("state", "unknown"),
           "progress": float(status.get("progress") or (1.0 if status.get("state") == "succeeded" else 0.0)),
           "epoch": None if status.get("epoch") is None else int(status["epoch"]) + 1,  # 1-based, as shown
           "device": status.get("device", ""), "nproc": status.get("nproc"),
           "created": pd.to_datetime(status.get("created"), unit="s") if status.get("created") else pd.NaT,
           "error": status.get("error") or ""}
    row.update(_recipe_parts(run))
    try:
        metrics = run.metrics()
    except Exception:  # noqa: BLE001 - a corrupt metrics file shows as no metrics
        metrics = {}
    row.update(_test_columns(metrics))
    started, ended = status.get("started"), status.get("ended")
    row["train_seconds"] = metrics.get("train_seconds") or (
        round(ended - started, 1) if isinstance(started, (int, float)) and isinstance(ended, (int, float)) else None)
    row["parameters"] = metrics.get("parameters")
    row["trainable_parameters"] = metrics.get("trainable_parameters")
    return row


def runs_table(runs: Iterable[Any]) -> pd.DataFrame:
    """All runs as one table (newest first as given); metric columns appear when any run has them."""
    rows = [run_row(r) for r in runs]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_id", "state", "progress"])


def baselines(runs: Iterable[Any]) -> pd.DataFrame:
    """The popularity baseline's test metrics, once per dataset among `runs` (the floor every
    result is compared with): run_id "popularity · <dataset>" and test_* columns."""
    rows, seen = [], set()
    for run in runs:
        try:
            metrics, dataset = run.metrics(), _recipe_parts(run).get("dataset", "")
        except Exception:  # noqa: BLE001 - a damaged run has no baseline to offer
            continue
        popularity = metrics.get("popularity") or {}
        if not popularity.get("test") or dataset in seen:
            continue
        seen.add(dataset)
        rows.append({"run_id": f"popularity · {dataset}", "dataset": dataset, **_test_columns(popularity)})
    return pd.DataFrame(rows)


def _test_columns(metrics: dict) -> dict:
    """test_<metric> of all test impressions, then test_warm_<metric> / test_cold_<metric> for those
    whose clicked item training saw / never saw, and test_cold_impressions (how many are cold)."""
    out = {}
    for part in ("test", "test_warm", "test_cold"):
        for name, value in (metrics.get(part) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not name.endswith("_skipped") \
                    and (name != "impressions" or part == "test_cold"):
                out[f"{part}_{name}"] = value
    return out


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The test metric columns of a runs table."""
    return [c for c in table.columns if c.startswith("test_")]


PARTS = {"test": "all", "test_warm": "warm", "test_cold": "cold"}  # metrics.json group -> the word shown


def metric_label(column: str) -> str:
    """A runs-table metric column as words: test_auc -> "AUC", test_cold_mrr -> "MRR (cold items)",
    test_cold_impressions -> "impressions (cold items)"."""
    for key in ("test_warm", "test_cold"):
        if column.startswith(key + "_"):
            name = column.removeprefix(key + "_")
            return f"{name if name == 'impressions' else name.upper()} ({PARTS[key]} items)"
    return column.removeprefix("test_").upper()


def warm_cold(runs: Iterable[Any]) -> pd.DataFrame:
    """The test metrics of each run split by the clicked item: one row per run and part ("all",
    "warm": training saw the item, "cold": it never did), in that order, with `impressions` (an
    int), each metric as a column, and `held_out`: the recipe's cold_items share (0 when no item
    was held out, so its cold items are only those first seen in valid/test impressions). Runs
    without a warm/cold split (older metrics) are left out."""
    rows = []
    for run in runs:
        try:
            metrics = run.metrics()
            options = (run.recipe().dataset.options or {})
        except Exception:  # noqa: BLE001 - a damaged run has no results to split
            continue
        if not any(metrics.get(key) for key in ("test_warm", "test_cold")):
            continue
        held_out = float(options.get("cold_items") or 0.0)
        for key, part in PARTS.items():
            values = metrics.get(key) or {}
            if not values:
                continue
            row = {"run_id": run.id, "part": part, "impressions": int(values.get("impressions") or 0),
                   "held_out": held_out}
            row.update({name: float(value) for name, value in values.items() if name != "impressions"
                        and isinstance(value, (int, float)) and not isinstance(value, bool)
                        and not name.endswith("_skipped")})
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["run_id", "part", "impressions", "held_out"])


def warm_cold_bars(table: pd.DataFrame, metrics: Iterable[str]) -> pd.DataFrame:
    """`warm_cold` rows as bars: run_id, run (escaped for plot labels), metric (upper case), part,
    value and `label` ("cold · 3 impressions"), for one grouped chart per run."""
    metrics = [m for m in metrics if m in table.columns]
    long = table.melt(id_vars=["run_id", "part", "impressions"], value_vars=metrics, var_name="metric",
                      value_name="value").dropna(subset=["value"])
    long["metric"] = long["metric"].str.upper()
    long["label"] = long["part"] + " · " + long["impressions"].map("{:,} impressions".format)
    long["run"] = long["run_id"].map(plain)
    return long


def curves(run: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(steps, epochs): training loss per logged step (with a global step) and per-epoch validation."""
    steps = pd.DataFrame(run.history("steps"))
    epochs = pd.DataFrame(run.history("epochs"))
    if len(steps) and "global_step" not in steps:
        steps["global_step"] = np.arange(1, len(steps) + 1)
    return steps, epochs


_PROGRESS_BAR = re.compile(r"\d+%\|")


def log_tail(run: Any, lines: int = 40, progress_bars: bool = False) -> str:
    """The last `lines` lines of the run's log ("" while there is none); tqdm progress-bar lines
    (carriage-return redraws captured in the file) are left out unless `progress_bars`."""
    try:
        with open(run.log_path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    kept = [line for line in text.replace("\r", "\n").splitlines()
            if line.strip() and (progress_bars or not _PROGRESS_BAR.search(line))]
    return "\n".join(kept[-lines:])


# ---- models -----------------------------------------------------------------------------
def model_size(recipe: Any, dataset: Dataset) -> dict:
    """Parameters (total, trainable) and a training-memory estimate, by building the model once
    on CPU (the app caches the answer per recipe; LM bricks load their language model)."""
    from lego_core.bricks import model

    net = model.build(recipe, dataset)
    return {"parameters": int(net.parameter_count()), "trainable": int(net.parameter_count(trainable_only=True)),
            "memory_mb": float(net.memory_estimate_mb())}


def human_count(n: int | float | None) -> str:
    """12345678 -> '12.3M' (for parameter counts)."""
    if n is None:
        return "-"
    n = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{int(n)}"
