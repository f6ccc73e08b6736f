"""Experiment trackers as more `TrainingLog`s: TensorBoard and MLflow, chosen by a recipe's
`training.loggers`, and `Logs`, the fan-out the trainer reports to (the run folder's `RunLog` first).

Like the metric loggers of torchtune, Lightning and Hugging Face's Trainer, each one receives the
records the loop already makes: steps (loss), epochs (loss + validation metrics), the recipe as
hyper-parameters (flattened `content.name`, `training.lr`, ...) and the final metrics (valid, test,
test_warm, test_cold). `jsonl` names the run folder's own steps.jsonl / epochs.jsonl / metrics.json
(`RunLog`), which every run writes whatever the list says: the app and `--resume` read them.

- `tensorboard`: event files in the run folder itself, so `tensorboard --logdir cache/runs` shows
  every run (sweep trials included) side by side, one row each in the HPARAMS table.
- `mlflow`: an MLflow run named after the run folder, in `$MLFLOW_TRACKING_URI` (default
  `sqlite:///<cache>/mlflow.db`), experiment `$MLFLOW_EXPERIMENT_NAME` (default `lego_core`); a resumed
  run continues its MLflow run (`mlflow_run.json` in the run folder).
"""
from __future__ import annotations

import atexit
import json
import os
from typing import Any

from lego_core.core.errors import RecipeError
from lego_core.core.paths import cache_dir
from lego_core.training.logs import RunLog, TrainingLog

LOGGERS = ("jsonl", "tensorboard", "mlflow")  # the choices of `training.loggers`
TERMINAL = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
HPARAM_METRICS = ("test", "test_warm", "test_cold", "valid")  # final metric groups shown as columns


def hyperparameters(recipe: Any) -> dict[str, Any]:
    """The recipe as one flat dict of scalars: `name`, `dataset.name`, `dataset.options.n_items`,
    `content.name`, `content.params.heads`, `training.lr`, ... (lists and None as text)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix] = value
        else:
            flat[prefix] = json.dumps(value)

    walk("", recipe.model_dump(mode="json"))
    return flat


def final_metrics(result: dict) -> dict[str, float]:
    """`test/auc`, `test_cold/ndcg@10`, `best_valid/mrr` (valid at the best epoch, apart from the
    per-epoch `valid/...` curves), ... of a run's result (numbers only)."""
    return {f"{'best_valid' if group == 'valid' else group}/{name}": float(value) for group in HPARAM_METRICS
            for name, value in (result.get(group) or {}).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "impressions"}


def _missing(name: str, package: str) -> RecipeError:
    return RecipeError(f"training.loggers: '{name}' needs the {package} package; install it "
                       f"(`pip install {package}`) or remove '{name}' from the recipe")


class TensorBoardLog:
    """Scalars, hyper-parameters and final metrics into TensorBoard event files in `folder` (the
    writer opens on the first record, so a process that never reports writes nothing)."""

    def __init__(self, folder, recipe: Any, run_name: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard", "tensorboard") from None
        self._writer_cls, self.folder, self.recipe, self.run_name = SummaryWriter, folder, recipe, run_name
        self.writer, self.purge_step = None, None

    def _open(self):
        if self.writer is None:
            self.writer = self._writer_cls(log_dir=str(self.folder), purge_step=self.purge_step, flush_secs=10)
            self.writer.add_text("recipe", "```\n" + self.recipe.to_yaml() + "\n```", 0)
        return self.writer

    def message(self, text: str) -> None:
        pass  # the run's log.txt holds the lines; TensorBoard shows numbers

    def step(self, record: dict) -> None:
        self._open().add_scalar("train/loss", record["loss"], record["global_step"])

    def epoch(self, record: dict) -> None:
        writer = self._open()
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)):
                group, _, name = key.partition("_") if key.startswith("valid_") else ("epoch", "", key)
                writer.add_scalar(f"{group}/{name}", value, record["epoch"])

    def status(self, **fields) -> None:
        if fields.get("state") in TERMINAL:
            self.close()

    def rewind(self, global_step: int, epoch: int) -> None:
        """Steps after the checkpoint replay: TensorBoard drops the old ones from `global_step + 1`."""
        if self.writer is None:
            self.purge_step = global_step + 1

    def result(self, metrics: dict) -> None:
        """The recipe and final metrics as one HPARAMS row (session = this run folder)."""
        from torch.utils.tensorboard.summary import hparams

        writer, finals = self._open(), final_metrics(metrics)
        for session in hparams(hyperparameters(self.recipe), finals):
            writer.file_writer.add_summary(session)
        for tag, value in finals.items():
            writer.add_scalar(tag, value, 0)
        writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MlflowLog:
    """Params, step/epoch metrics and final metrics into one MLflow run (through `MlflowClient`, so
    nothing global of mlflow's changes)."""

    def __init__(self, run, recipe: Any):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise _missing("mlflow", "mlflow-skinny") from None
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{cache_dir() / 'mlflow.db'}"
        self.experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "lego_core"
        self.run, self.recipe, self.client, self.run_id = run, recipe, MlflowClient(self.uri), None
        self.ended = False

    def _start(self) -> str:
        if self.run_id is not None:
            return self.run_id
        marker = self.run.path / "mlflow_run.json"
        try:
            saved = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = {}
        if saved.get("uri") == self.uri and saved.get("run_id"):
            self.run_id = saved["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            found = self.client.get_experiment_by_name(self.experiment)
            experiment = found.experiment_id if found else self.client.create_experiment(self.experiment)
            created = self.client.create_run(experiment, run_name=self.run.id,
                                             tags={"lego.run_dir": str(self.run.path)})
            self.run_id = created.info.run_id
            from mlflow.entities import Param

            params = [Param(k, str(v)[:6000]) for k, v in hyperparameters(self.recipe).items()]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(self.run_id, params=params[start:start + 100])
            marker.write_text(json.dumps({"uri": self.uri, "run_id": self.run_id}), encoding="utf-8")
        atexit.register(self._end, "FAILED")  # a process that dies with the run open marks it failed
        return self.run_id

    def _metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric
        import time

        stamp = int(time.time() * 1000)
        self.client.log_batch(self._start(), metrics=[Metric(k.replace("@", "_at_"), float(v), stamp, step)
                                                      for k, v in values.items()])

    def message(self, text: str) -> None:
        pass

    def step(self, record: dict) -> None:
        self._metrics({"train/loss": record["loss"]}, record["global_step"])

    def epoch(self, record: dict) -> None:
        values = {(f"valid/{k[6:]}" if k.startswith("valid_") else f"epoch/{k}"): v for k, v in record.items()
                  if k != "epoch" and isinstance(v, (int, float))}
        self._metrics(values, record["epoch"])

    def status(self, **fields) -> None:
        if fields.get("state") in TERMINAL:
            self._end(TERMINAL[fields["state"]])

    def rewind(self, global_step: int, epoch: int) -> None:
        pass  # MLflow keeps every logged value; replayed steps are logged again at their step

    def result(self, metrics: dict) -> None:
        self._metrics(final_metrics(metrics), 0)

    def _end(self, status: str) -> None:
        if self.run_id is not None and not self.ended:
            self.ended = True
            self.client.set_terminated(self.run_id, status=status)

    def close(self) -> None:
        self._end("FINISHED")


class Logs:
    """One TrainingLog that forwards every record to several (the run folder's first)."""

    def __init__(self, *logs: TrainingLog):
        self.logs = logs

    def message(self, text: str) -> None:
        for log in self.logs:
            log.message(text)

    def step(self, record: dict) -> None:
        for log in self.logs:
            log.step(record)

    def epoch(self, record: dict) -> None:
        for log in self.logs:
            log.epoch(record)

    def status(self, **fields) -> None:
        for log in self.logs:
            log.status(**fields)

    def rewind(self, global_step: int, epoch: int) -> None:
        for log in self.logs:
            log.rewind(global_step, epoch)

    def result(self, metrics: dict) -> None:
        for log in self.logs:
            log.result(metrics)


def for_run(recipe: Any, run, echo: bool = True) -> TrainingLog:
    """Where a run folder's training reports: its `RunLog`, plus each tracker `training.loggers` names."""
    chosen = list(dict.fromkeys(getattr(recipe.training, "loggers", None) or ()))
    extra: list[TrainingLog] = []
    for name in chosen:
        if name == "tensorboard":
            extra.append(TensorBoardLog(run.path, recipe, run.id))
        elif name == "mlflow":
            extra.append(MlflowLog(run, recipe))
    log = RunLog(run, echo=echo)
    return Logs(log, *extra) if extra else log
