"""Runs: the run store (`store`: one folder per trained run, its typed `status`), loading a trained
model back (`loading`) and the recommendations it scores (`recommend`).

May import core, data, lm, bricks, evaluation and training; imported by jobs, sweeps, explore, cli
and the pages. The store's API is re-exported here: `from lego_core import runs; runs.open(id)`.
"""
from lego_core.runs.store import (ACTIVE_STATES, FINAL_STATES, STATES, Run, check_id, create, delete, list,  # noqa: A004
                                  now, open, runs_root)

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "STATES", "Run", "check_id", "create", "delete", "list", "now", "open",
           "runs_root"]
