"""What the Leaderboard page shows of a sweep, as data: its trials, its configurations ranked by
the mean validation metric over seeds (spread, 95% interval of the mean, a marker where two
intervals overlap), the Pareto fronts of quality against train time and against parameter count,
a status summary, and Optuna's parameter-importance and parallel-coordinate figures (plotly).

`Snapshot.load(sweep_id)` reads the study once; everything else is computed from that snapshot.
"""
from __future__ import annotations

import math
import socket
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lego_core.evaluation import metrics as lego_metrics
from lego_core.sweeps import study as studies
from lego_core.sweeps.spec import SweepSpec
from lego_core.sweeps.sessions import elapsed, sessions

SLOTS = ("content", "behavior", "predictor")
STATE_NAMES = {"COMPLETE": "succeeded", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
               "WAITING": "waiting"}


@dataclass
class Snapshot:
    sweep_id: str
    spec: SweepSpec
    study: Any
    trials: list  # optuna FrozenTrial, all of them

    @classmethod
    def load(cls, sweep_id: str, storage: str | None = None) -> "Snapshot":
        study, spec = studies.load(sweep_id, storage)
        return cls(sweep_id, spec, study, study.get_trials(deepcopy=False))

    @property
    def maximize(self) -> bool:
        return lego_metrics.higher_is_better(self.spec.metric)

    # ---- trials ------------------------------------------------------------------------------
    def trials_frame(self) -> pd.DataFrame:
        """One row per trial that got a run (or waits for one): number, state, configuration,
        bricks, parameters (`param:<name>`), seed, value (valid metric), test metric, times, run."""
        metric = self.spec.metric
        rows = []
        for t in self.trials:
            a = t.user_attrs
            if "skipped" in a or ("config" not in a and t.state.name != "RUNNING"):
                continue
            config = _config(a.get("config"))
            row = {"trial": t.number, "state": STATE_NAMES.get(t.state.name, t.state.name.lower()),
                   "config": a.get("config"), "seed": a.get("seed"),
                   **{slot: config.get(slot) for slot in SLOTS},
                   **{f"param:{k}": v for k, v in config.items() if k not in SLOTS},
                   "value": t.value if t.state.name == "COMPLETE" else None,
                   f"test_{metric}": (a.get("test") or {}).get(metric),
                   "epochs": len(t.intermediate_values), "train_seconds": a.get("train_seconds"),
                   "run_seconds": a.get("run_seconds"), "parameters": a.get("parameters"),
                   "run_id": a.get("run_id"), "host": a.get("host"), "error": a.get("error") or ""}
            rows.append(row)
        return pd.DataFrame(rows)

    def skipped(self) -> pd.DataFrame:
        """Proposals that got no run (bricks that do not fit, repeats), with the reason."""
        rows = [{"trial": t.number, "reason": t.user_attrs["skipped"]} for t in self.trials if "skipped" in t.user_attrs]
        return pd.DataFrame(rows, columns=["trial", "reason"])

    # ---- the leaderboard ---------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """One row per configuration: ranked by the mean valid metric over its finished seeds (best
        first; configurations with none finished after, unranked)."""
        trials = self.trials_frame()
        metric = self.spec.metric
        if trials.empty:
            return pd.DataFrame(columns=["rank", "content", "behavior", "predictor", "params", "seeds", "mean", "std"])
        rows = []
        for key, group in trials.groupby("config", sort=False, dropna=False):
            config = _config(key)
            done = group[group["state"] == "succeeded"]
            values = done["value"].astype(float).to_numpy()
            n = len(values)
            mean = float(values.mean()) if n else math.nan
            std = float(values.std(ddof=1)) if n > 1 else math.nan
            half = _t95(n) * std / math.sqrt(n) if n > 1 else math.nan
            test = done[f"test_{metric}"].dropna().astype(float)
            rows.append({"config": key, **{slot: config.get(slot) for slot in SLOTS},
                         "params": ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in config.items()
                                             if k not in SLOTS),
                         "seeds": n, "pruned": int((group["state"] == "pruned").sum()),
                         "failed": int((group["state"] == "failed").sum()),
                         "running": int(group["state"].isin(["running", "waiting"]).sum()),
                         "mean": mean, "std": std, "low": mean - half, "high": mean + half,
                         f"test_{metric}": float(test.mean()) if len(test) else math.nan,
                         f"test_{metric}_std": float(test.std(ddof=1)) if len(test) > 1 else math.nan,
                         "train_seconds": _mean(done["train_seconds"]), "parameters": _mean(done["parameters"]),
                         "runs": [r for r in group["run_id"].tolist() if isinstance(r, str)],
                         "trials": group["trial"].tolist()})
        table = pd.DataFrame(rows)
        ranked = table["seeds"] > 0
        table["_key"] = np.where(ranked, table["mean"] * (-1 if self.maximize else 1), np.inf)
        table = table.sort_values(["_key", "config"]).drop(columns="_key").reset_index(drop=True)
        table.insert(0, "rank", [i + 1 if r else None for i, r in enumerate(table["seeds"] > 0)])
        table["rank"] = table["rank"].astype("Int64")
        table["overlaps"] = _overlaps(table)
        table["tie"] = [bool(o) and (rank + 1 in o or rank - 1 in o) if pd.notna(rank) else False
                        for rank, o in zip(table["rank"], table["overlaps"])]
        for cost in ("train_seconds", "parameters"):
            table[f"pareto_{cost}"] = _pareto(table, cost, self.maximize)
        return table

    def runs_of(self, config: str) -> pd.DataFrame:
        """The trials of one configuration with their runs (`here`: the run folder is on this machine)."""
        from lego_core import runs

        trials = self.trials_frame()
        if trials.empty:
            return trials
        rows = trials[trials["config"] == config].copy()
        here = []
        for run_id, host in zip(rows["run_id"], rows["host"]):
            try:
                ok = isinstance(run_id, str) and host in (None, socket.gethostname()) and bool(runs.open(run_id))
            except Exception:  # noqa: BLE001 - a deleted or foreign run is simply not openable here
                ok = False
            here.append(ok)
        rows["here"] = here
        return rows[["trial", "seed", "state", "value", f"test_{self.spec.metric}", "epochs", "train_seconds",
                     "run_id", "host", "here", "error"]]

    # ---- status -----------------------------------------------------------------------------
    def summary(self) -> dict:
        """{"state": created|running|paused|finished, "counts": {...}, "planned", "workers",
        "elapsed", "minutes", "metric", "sampler", "pruner", "best", "stopped" (why the last worker
        stopped early, one line, or None)}."""
        counts = {name: 0 for name in ("succeeded", "pruned", "failed", "running", "waiting", "skipped")}
        for t in self.trials:
            if "skipped" in t.user_attrs:
                counts["skipped"] += 1
            else:
                counts[STATE_NAMES.get(t.state.name, "failed")] += 1
        workers = sessions(self.study)
        live = [w for w in workers if w["alive"]]
        if live:
            state = "running"
        elif not workers:
            state = "created"
        elif counts["running"] or counts["waiting"] or any(w.get("stopped") for w in workers[-1:]) \
                or workers[-1].get("ended") is None:
            state = "paused"
        else:
            state = "finished"
        table = self.table()
        best = table.iloc[0].to_dict() if len(table) and pd.notna(table.iloc[0]["rank"]) else None
        return {"sweep": self.sweep_id, "state": state, "counts": counts, "planned": studies.plan(self.spec)["trials"],
                "workers": [f"{w.get('host')}:{w.get('pid')}" for w in live], "elapsed": elapsed(self.study),
                "minutes": self.spec.budget.minutes, "metric": self.spec.metric, "sampler": self.spec.sampler,
                "pruner": self.spec.pruner.name, "seeds": len(self.spec.seed_list), "best": best,
                "stopped": workers[-1].get("stopped") if workers else None}

    # ---- Optuna's figures -------------------------------------------------------------------------
    def varied(self) -> list[str]:
        """The search's dimensions that take more than one value."""
        return [d.name for d in self.spec.dimensions() if d.kind != "categorical" or len(d.values) > 1]

    def importance_figure(self) -> tuple[Any, str]:
        """(plotly figure or None, why not): Optuna's parameter importances over finished trials
        (parameters every finished trial has; a brick's own parameters only when it is always chosen)."""
        import optuna

        done = [t for t in self.trials if t.state.name == "COMPLETE"]
        common = [p for p in self.varied() if all(p in t.params for t in done)]
        if len(done) < 2 or not common:
            return None, "Parameter importance needs two finished trials and a parameter they all vary."
        if len({tuple(t.params.get(p) for p in common) for t in done}) < 2:
            return None, "Parameter importance needs finished trials that differ in some parameter."
        try:
            return optuna.visualization.plot_param_importances(self.study, params=common), ""
        except (ValueError, RuntimeError) as exc:
            return None, f"Parameter importance is not available yet ({str(exc).splitlines()[0][:120]})."

    def parallel_figure(self) -> tuple[Any, str]:
        import optuna

        done = [t for t in self.trials if t.state.name == "COMPLETE"]
        params = [p for p in self.varied() if any(p in t.params for t in done)]
        if not done or not params:
            return None, "Parallel coordinates appear once a trial has finished and the sweep varies a parameter."
        try:
            return optuna.visualization.plot_parallel_coordinate(self.study, params=params), ""
        except (ValueError, RuntimeError) as exc:
            return None, f"Parallel coordinates are not available yet ({str(exc).splitlines()[0][:120]})."


# ---- helpers ------------------------------------------------------------------------------------
NO_SPREAD = "—"  # a configuration with fewer than two finished seeds has no spread to measure


def spread_text(table: pd.DataFrame) -> pd.DataFrame:
    """The table's spread as words, one row per configuration: "± std" ("0.0123") and "95% interval"
    ("0.7120 – 0.7450"), NO_SPREAD where fewer than two seeds finished."""
    two = table["seeds"] >= 2
    return pd.DataFrame({
        "± std": [f"{s:.4f}" if ok else NO_SPREAD for s, ok in zip(table["std"], two)],
        "95% interval": [f"{lo:.4f} – {hi:.4f}" if ok else NO_SPREAD
                         for lo, hi, ok in zip(table["low"], table["high"], two)]}, index=table.index)


def _config(key: Any) -> dict:
    import json

    try:
        value = json.loads(key) if isinstance(key, str) else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _mean(column: pd.Series) -> float:
    values = pd.to_numeric(column, errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan


def _t95(n: int) -> float:
    """Two-sided 95% quantile of Student's t with n-1 degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1))


def _overlaps(table: pd.DataFrame) -> list[list[int]]:
    """Per row, the ranks of the other configurations whose 95% interval overlaps its own."""
    out = []
    for i, row in table.iterrows():
        found = []
        if pd.notna(row["rank"]) and np.isfinite(row["low"]):
            for j, other in table.iterrows():
                if i != j and pd.notna(other["rank"]) and np.isfinite(other["low"]) \
                        and row["low"] <= other["high"] and other["low"] <= row["high"]:
                    found.append(int(other["rank"]))
        out.append(found)
    return out


def _pareto(table: pd.DataFrame, cost: str, maximize: bool) -> list[bool]:
    """Whether each ranked configuration is on the Pareto front of quality (mean metric) against
    `cost` (lower is better): no other one is at least as good on both and better on one."""
    quality = table["mean"].to_numpy(dtype=float) * (1 if maximize else -1)
    costs = pd.to_numeric(table[cost], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(quality) & np.isfinite(costs)
    front = []
    for i in range(len(table)):
        if not ok[i]:
            front.append(False)
            continue
        dominated = ok & (quality >= quality[i]) & (costs <= costs[i]) & ((quality > quality[i]) | (costs < costs[i]))
        front.append(not dominated.any())
    return front
