"""Sweeps: try many brick combinations and parameters, several seeds each, with Optuna.

The package, one concern per module:
- `spec`: the sweep spec (YAML, validated like recipes: one-line SweepError naming the field);
- `study`: the Optuna study of a sweep (storage, sampler, pruner), a trial -> configuration ->
  recipe, and the plan (how many runs);
- `worker`: the loop that asks for trials, runs each through `lego_core.jobs`, prunes and tells,
  and stops after MAX_FAILURES_IN_A_ROW failed trials; `trials`: what a trial keeps of its run;
- `optuna_adapter`: the one use of a private Optuna name (reopening a dead worker's trial),
  pinned by a test to the Optuna version of requirements.txt; everything else is public API;
- `sessions`: who serves a sweep (liveness, wall time), background workers, pausing them;
- `leaderboard`: the tables and figures the Leaderboard page shows;

What the Builder's Sweep mode edits lives in lego_core.explore.sweep_form and the command line in
lego_core.cli.sweeps. May import core, data, lm, bricks, evaluation, training, runs and jobs. This
module is the public API below.
"""
from __future__ import annotations

from typing import Any

from lego_core.sweeps.spec import SweepError, SweepSpec
from lego_core.sweeps.study import create, delete, list_sweeps, load, plan
from lego_core.sweeps.sessions import start_background, stop
from lego_core.sweeps.worker import Worker

__all__ = ["SweepError", "SweepSpec", "create", "load", "delete", "list_sweeps", "plan", "run", "work",
           "launch", "resume", "stop", "Worker"]


def work(sweep_id: str, storage: str | None = None, root: Any = None, poll: float = 0.5, echo: bool = True) -> dict:
    """Serve a sweep in this process until nothing is left to start or follow (see `worker`)."""
    return Worker(sweep_id, storage=storage, root=root, poll=poll, echo=echo).run()


def run(spec: Any, storage: str | None = None, root: Any = None, sweep_id: str | None = None, poll: float = 0.5,
        echo: bool = True) -> str:
    """Create a sweep from a spec and serve it in this process to the end; returns its id."""
    sweep_id = create(spec, storage=storage, sweep_id=sweep_id)
    work(sweep_id, storage=storage, root=root, poll=poll, echo=echo)
    return sweep_id


def launch(spec: Any, storage: str | None = None, runs_dir: Any = None) -> str:
    """Create a sweep and start a background worker for it (what the Builder's Sweep mode does)."""
    sweep_id = create(spec, storage=storage)
    start_background(sweep_id, storage=storage, runs_dir=runs_dir)
    return sweep_id


def resume(sweep_id: str, storage: str | None = None, runs_dir: Any = None) -> int:
    """Start a background worker that continues a sweep where it stopped; returns its pid."""
    return start_background(sweep_id, storage=storage, runs_dir=runs_dir)
