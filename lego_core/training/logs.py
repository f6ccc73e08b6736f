"""Where a training loop reports: a small protocol with a run-folder and an in-memory implementation.

Like torchtune's metric loggers, the loop never knows where its records go: `RunLog` writes a run
folder (log.txt, steps.jsonl, epochs.jsonl, metrics.json and the training part of status.json),
`MemoryLog` keeps everything in lists for tests and benches, so both use the very loop that ships.
Experiment trackers (TensorBoard, MLflow) are more implementations, in `training.loggers`.
"""
from __future__ import annotations

import time
from typing import Protocol

from tqdm.auto import tqdm


class TrainingLog(Protocol):
    def message(self, text: str) -> None:
        """One human-readable line (the run's log)."""

    def step(self, record: dict) -> None:
        """A training-step record: epoch, step, global_step, loss."""

    def epoch(self, record: dict) -> None:
        """An epoch record: epoch, loss and the validation metrics."""

    def status(self, **fields) -> None:
        """The trainer's part of the run status (state, progress, epoch, device, ...)."""

    def rewind(self, global_step: int, epoch: int) -> None:
        """Forget step and epoch records after a checkpoint that is being resumed (they replay)."""

    def result(self, metrics: dict) -> None:
        """The finished run's metrics: valid, test, test_warm, test_cold, popularity, best_epoch, ..."""


class RunLog:
    """Reports into a run folder (`lego_core.runs.store.Run`); with `echo`, messages also go to the terminal."""

    def __init__(self, run, echo: bool = True):
        self.run, self.echo = run, echo

    def message(self, text: str) -> None:
        with open(self.run.log_path, "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        if self.echo:
            tqdm.write(text)

    def step(self, record: dict) -> None:
        self.run.append("steps", record)

    def epoch(self, record: dict) -> None:
        self.run.append("epochs", record)

    def status(self, **fields) -> None:
        self.run.set_training_status(**fields)

    def rewind(self, global_step: int, epoch: int) -> None:
        steps = [r for r in self.run.history("steps") if r.get("global_step", 0) <= global_step]
        self.run.rewrite_history("steps", steps)
        epochs = [r for r in self.run.history("epochs") if r.get("epoch", 0) <= epoch]
        self.run.rewrite_history("epochs", epochs)

    def result(self, metrics: dict) -> None:
        self.run.write_metrics(metrics)


class MemoryLog:
    """Keeps every report in memory: `messages`, `steps`, `epochs`, the merged `state`, `metrics`."""

    def __init__(self):
        self.messages: list[str] = []
        self.steps: list[dict] = []
        self.epochs: list[dict] = []
        self.state: dict = {}
        self.metrics: dict | None = None

    def message(self, text: str) -> None:
        self.messages.append(text)

    def step(self, record: dict) -> None:
        self.steps.append(dict(record))

    def epoch(self, record: dict) -> None:
        self.epochs.append(dict(record))

    def status(self, **fields) -> None:
        self.state.update(fields)

    def rewind(self, global_step: int, epoch: int) -> None:
        self.steps = [r for r in self.steps if r.get("global_step", 0) <= global_step]
        self.epochs = [r for r in self.epochs if r.get("epoch", 0) <= epoch]

    def result(self, metrics: dict) -> None:
        self.metrics = dict(metrics)
