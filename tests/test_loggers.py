"""`training.loggers`: a run also reports to TensorBoard (event files in its run folder, read back
here with TensorBoard's own reader) and MLflow (a local sqlite store, read back with MlflowClient):
steps, epochs with validation metrics, the recipe as hyper-parameters and the final test metrics
(all / warm / cold). The Builder offers the choice."""
from __future__ import annotations

import json

import pytest

from lego_core import runs
from lego_core.bricks.recipe import Recipe
from lego_core.core.errors import RecipeError
from lego_core.training import loggers, train
from lego_core.training.logs import MemoryLog, RunLog
from test_app_pages import TINY as APP_TINY, _navigation_mode, show, start  # noqa: F401 (fixture)

TINY = {"dataset.name": "synthetic",
        "dataset.options": {"n_items": 200, "n_users": 40, "n_topics": 3, "history_len": 6, "n_impressions": 60,
                            "impression_size": 4, "title_len": 5, "seed": 1},
        "training.epochs": 1, "training.dim": 8, "training.batch_size": 16, "training.negatives": 2,
        "training.glove": False, "training.max_length": 6, "training.max_history": 6, "training.patience": 1,
        "training.eval_batch_size": 64, "training.log_every": 1, "training.max_steps_per_epoch": 4,
        "training.amp": False, "training.seed": 3, "training.device": "cpu"}


def tiny(**more) -> Recipe:
    return Recipe.preset("nrms").with_overrides({**TINY, **more})


def events(folder):
    """TensorBoard's own reader over one run folder: scalars, and the hparams plugin's records."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_gets_steps_epochs_hyperparameters_and_final_metrics():
    recipe = tiny(**{"training.loggers": ["tensorboard"], "training.epochs": 2})
    run = runs.create(recipe)
    result = train.run(recipe, run, progress=False)

    acc = events(run.path)
    scalars = acc.Tags()["scalars"]
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [r["global_step"] for r in run.history("steps")]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in run.history("steps")], rel=1e-6)
    assert [e.step for e in acc.Scalars("valid/auc")] == [1, 2]
    assert acc.Scalars("valid/auc")[-1].value == pytest.approx(run.history("epochs")[-1]["valid_auc"], rel=1e-6)
    for group in ("test", "test_warm", "test_cold"):  # the final metrics, one scalar each
        assert acc.Scalars(f"{group}/auc")[0].value == pytest.approx(result[group]["auc"], rel=1e-6)
    assert "test/ndcg@10" in scalars

    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = session.session_start_info.hparams
    assert hparams["content.name"].string_value == "attention"
    assert hparams["training.dim"].number_value == 8
    assert hparams["dataset.name"].string_value == "synthetic"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} >= {"test/auc", "test_warm/auc", "test_cold/auc"}
    assert json.loads(run.metrics_path.read_text())["test"]["auc"] == result["test"]["auc"]  # RunLog still writes


def test_runs_side_by_side_under_one_logdir_each_with_its_hyperparameters():
    """`tensorboard --logdir cache/runs`: every run folder is one TensorBoard run (a sweep's trials too)."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    for lr in (1e-3, 1e-2):
        recipe = tiny(**{"training.loggers": ["tensorboard"], "training.lr": lr})
        train.run(recipe, runs.create(recipe), progress=False)
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(runs.runs_root()))
    multiplexer.Reload()
    names = sorted(multiplexer.Runs())
    assert names == sorted(r.id for r in runs.list())
    lrs = set()
    from tensorboard.plugins.hparams import plugin_data_pb2

    for name in names:
        content = multiplexer.PluginRunToTagToContent("hparams")[name]["_hparams_/session_start_info"]
        lrs.add(plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams["training.lr"]
                .number_value)
    assert lrs == {1e-3, 1e-2}


def test_mlflow_run_holds_params_curves_and_final_metrics(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    recipe = tiny(**{"training.loggers": ["mlflow", "jsonl"]})
    run = runs.create(recipe)
    result = train.run(recipe, run, progress=False)

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("lego_core")
    found = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in found] == [run.id]
    mlrun = found[0]
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["predictor.name"] == recipe.predictor.name
    assert mlrun.data.params["training.lr"] == str(recipe.training.lr)
    for group in ("test", "test_warm", "test_cold"):
        assert mlrun.data.metrics[f"{group}/auc"] == pytest.approx(result[group]["auc"])
    assert mlrun.data.metrics["best_valid/auc"] == pytest.approx(result["valid"]["auc"])
    assert mlrun.data.metrics["test/ndcg_at_10"] == pytest.approx(result["test"]["ndcg@10"])
    steps = client.get_metric_history(mlrun.info.run_id, "train/loss")
    assert [m.step for m in steps] == [r["global_step"] for r in run.history("steps")]
    assert client.get_metric_history(mlrun.info.run_id, "valid/auc")[0].step == 1


def test_the_run_folder_log_comes_first_and_jsonl_is_always_written():
    run = runs.create(tiny())
    assert isinstance(loggers.for_run(tiny(), run), RunLog)  # no tracker: the run folder alone
    both = loggers.for_run(tiny(**{"training.loggers": ["jsonl", "tensorboard", "tensorboard"]}), run)
    assert [type(log).__name__ for log in both.logs] == ["RunLog", "TensorBoardLog"]


def test_a_fan_out_forwards_every_record_and_the_final_metrics():
    a, b = MemoryLog(), MemoryLog()
    both = loggers.Logs(a, b)
    both.step({"epoch": 0, "step": 1, "global_step": 1, "loss": 0.5})
    both.epoch({"epoch": 1, "loss": 0.4, "valid_auc": 0.6})
    both.result({"test": {"auc": 0.7}})
    both.rewind(0, 0)
    for log in (a, b):
        assert log.steps == [] and log.epochs == [] and log.metrics == {"test": {"auc": 0.7}}


def test_an_unknown_logger_is_refused_in_one_line():
    with pytest.raises(RecipeError, match="training.loggers.0") as err:
        tiny(**{"training.loggers": ["wandb"]})
    assert "\n" not in str(err.value)


def test_hyperparameters_are_flat_scalars():
    flat = loggers.hyperparameters(tiny(**{"training.fields": ["title"]}))
    assert flat["training.fields"] == '["title"]' and flat["training.loss"] == "null"
    assert flat["dataset.options.n_items"] == 200
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())


def test_the_builder_offers_the_trackers():
    at = show(start(dataset="synthetic", synthetic_options=APP_TINY), "pages/builder.py")
    chooser = at.multiselect(key="t-loggers")
    assert list(chooser.options) == ["tensorboard", "mlflow"] and chooser.value == []
    chooser.set_value(["tensorboard", "mlflow"]).run()
    assert not at.exception
    recipe = Recipe.from_yaml([c.value for c in at.code if "content:" in c.value][0])
    assert recipe.training.loggers == ["tensorboard", "mlflow"]
