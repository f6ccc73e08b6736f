"""What a sweep keeps of a run in its trial: the state, metrics and times the leaderboard shows
(runs on other machines included)."""
from __future__ import annotations

from typing import Any

from lego_core.core.errors import LegoError


def run_attrs(run: Any) -> dict:
    """What the leaderboard needs from a run, kept in the trial (runs on other machines included)."""
    status = run.status()
    try:
        metrics = run.metrics()
    except LegoError:
        metrics = {}
    out: dict[str, Any] = {"run_state": status.get("state")}
    for split in ("valid", "test"):
        part = {k: v for k, v in (metrics.get(split) or {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.endswith("_skipped")}
        if part:
            out[split] = part
    for key in ("train_seconds", "parameters", "best_epoch"):
        if isinstance(metrics.get(key), (int, float)):
            out[key] = metrics[key]
    model = run.status_model()  # from the job's start (process start-up included) to the trainer's end
    job, training = (model.job, model.training) if model is not None else (None, None)
    started = (job.started if job else None) or status.get("started")
    ended = (training.ended if training else None) or status.get("ended")
    if isinstance(started, (int, float)) and isinstance(ended, (int, float)):
        out["run_seconds"] = round(ended - started, 2)
    return out
