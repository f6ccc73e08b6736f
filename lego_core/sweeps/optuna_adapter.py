"""The one place lego_core reaches past Optuna's public API, pinned by
tests/test_sweeps.py::test_the_optuna_adapter_matches_the_pinned_optuna to the version in
requirements.txt (an Optuna upgrade that breaks it fails that test, not a sweep).

A worker that takes over a RUNNING trial of a worker that died must report its run's epochs and
tell its end on that same trial (so the trial keeps its number, run and seed, and nothing is
repeated). Optuna's public API gives a `Trial` only from `study.ask()`; `Trial(study, trial_id)`
needs the storage's trial id, which a `FrozenTrial` keeps in a private attribute.
"""
from __future__ import annotations

from typing import Any

PINNED = "5.0.0"  # the Optuna version this module was checked against (requirements.txt)


def reopen(study: Any, frozen: Any) -> Any:
    """A live `optuna.trial.Trial` for the RUNNING trial `frozen` of `study`."""
    import optuna

    return optuna.trial.Trial(study, frozen._trial_id)
