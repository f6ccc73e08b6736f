"""Sweeps: spec validation, a small grid of real runs end to end, pruning, resume after the worker
is killed, two workers on one SQLite file, the `pruned` run state.

Most tests swap the trainer for a small stand-in (the spec's `command`, as `jobs.launch(command=...)`):
it writes one epoch record per `seconds`, with a validation AUC set by the content brick and the
seed, then metrics.json, and obeys SIGTERM like the trainer. The grid test trains for real on a
tiny synthetic dataset.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lego_core import jobs, runs
from lego_core.sweeps import SweepError, SweepSpec, leaderboard, plan
from lego_core.cli import sweeps as sweep_cli
from lego_core.sweeps import study as studies
from tests.test_jobs import _kill_all

ROOT = Path(__file__).resolve().parent.parent

FAKE_TRAINER = r'''
import os, signal, sys, time
from lego_core import runs
run = runs.open(sys.argv[1])
seconds = float(sys.argv[2])
recipe = run.recipe()
quality = {"attention": 0.80, "cnn": 0.70, "pooling": 0.60}.get(recipe.content.name, 0.5)
quality -= 0.05 * (recipe.training.seed % 10)  # later seeds score lower: a pruner has something to prune
stop = []
signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))
run.set_training_status(state="running", pid=os.getpid(), started=time.time(), progress=0.0)
done = [r for r in run.history("epochs")] if "--resume" in sys.argv else []
if not done:
    run.rewrite_history("epochs", [])
start = time.time()
for epoch in range(len(done) + 1, recipe.training.epochs + 1):
    end = time.time() + seconds
    while time.time() < end and not stop:
        time.sleep(0.02)
    if stop:
        run.set_training_status(state="cancelled", ended=time.time())
        sys.exit(0)
    run.append("epochs", {"epoch": epoch, "loss": 1.0 / epoch, "valid_auc": quality + 0.01 * epoch})
    run.checkpoint_path("last").write_bytes(b"checkpoint")
    run.set_training_status(progress=epoch / recipe.training.epochs, epoch=epoch - 1)
best = quality + 0.01 * recipe.training.epochs
run.write_metrics({"valid": {"auc": best}, "test": {"auc": best - 0.02}, "train_seconds": time.time() - start,
                   "parameters": 1000 * len(recipe.content.name), "best_epoch": recipe.training.epochs})
run.set_training_status(state="succeeded", ended=time.time(), progress=1.0)
'''


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LEGO_MAX_CONCURRENT", raising=False)
    yield tmp_path / "cache"
    _stop_everything(tmp_path / "cache")


def _stop_everything(cache: Path) -> None:
    """Leave no worker or run behind, whatever the test did."""
    for proc in list(_WORKERS):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        _WORKERS.remove(proc)
    _kill_all(cache / "runs")


_WORKERS: list[subprocess.Popen] = []


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)

    def command(seconds: float = 0.2) -> list[str]:
        return [sys.executable, str(script), "{run_dir}", str(seconds), "{resume}"]
    return command


def spec(**fields) -> dict:
    """A spec on the stand-in trainer's terms (its recipe is never trained for real)."""
    out = {"name": "t", "base": "nrms", "set": {"training.epochs": 3}, "slots": {"content": ["attention", "cnn"]},
           "seeds": 1, "budget": {"trials": 10}, "sampler": "grid", "max_concurrent": 2}
    out.update(fields)
    return out


def worker_process(sweep_id: str, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "lego_core", "sweep", "worker", sweep_id, "--poll", "0.2", *extra],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _WORKERS.append(proc)
    return proc


def finished(sweep_id: str, storage: str | None = None):
    snap = leaderboard.Snapshot.load(sweep_id, storage)
    return snap, {t.number: t for t in snap.trials}


# ---- spec validation --------------------------------------------------------------------------
BAD_SPECS = [
    ("slots: {}", "field 'base': Field required"),
    ("base: nope", "field 'base': unknown preset 'nope'"),
    ("base: nrms\nbogus: 1", "field 'bogus'"),
    ("base: nrms\nslots: {content: [foo]}", "field 'slots.content': unknown content 'foo'"),
    ("base: nrms\nslots: {content: []}", "field 'slots.content': list at least one brick"),
    ("base: nrms\nslots: {behavior: [poly], predictor: [dot]}", "field 'slots': no combination"),
    ("base: nrms\nparams: {content.cnn.window: [3]}", "brick 'cnn' is not in slots.content"),
    ("base: nrms\nparams: {content.attention.heads: {low: 0, high: 100}}", "leaves the allowed range [1, 64]"),
    ("base: nrms\nparams: {content.attention.nope: [1]}", "has no parameter 'nope'"),
    ("base: nrms\nparams: {content.attention.heads: [3, x]}", "must be of type int"),
    ("base: nrms\nparams: {training.lr: {}}", "give low and high"),
    ("base: nrms\nparams: {training.lr: {low: 0, high: 0.1, log: true}}", "a log range needs low > 0"),
    ("base: nrms\nparams: {training.lr: {low: 0.1, high: 0.01}}", "must be below high"),
    ("base: nrms\nparams: {training.seed: [1, 2]}", "use `seeds`"),
    ("base: nrms\nparams: {foo: [1]}", "name a brick parameter as <slot>.<brick>.<param>"),
    ("base: nrms\nseeds: 3\nbudget: {trials: 2}", "field 'budget.trials'"),
    ("base: nrms\nseeds: [1, 1]", "field 'seeds'"),
    ("base: nrms\nmetric: foo", "field 'metric': must be one of"),
    ("base: nrms\nsampler: bayes", "field 'sampler'"),
    ("base: nrms\npruner: {name: median, min_epochs: 0}", "field 'pruner.min_epochs'"),
    ("base: nrms\ncommand: []", "field 'command'"),
    ("base: nrms\nslots: {content: all, behavior: all, predictor: all}\nparams: {training.dim: {low: 4, high: 4096, points: 20}, "
     "training.lr: {low: 0.0001, high: 0.1, points: 20}}\nsampler: grid", "the grid has"),
    ("- a list", "must be a YAML mapping"),
    ("base: [unclosed", "not valid YAML"),
]


@pytest.mark.parametrize("text,expected", BAD_SPECS, ids=[e for _, e in BAD_SPECS])
def test_a_bad_spec_is_refused_in_one_line_naming_the_field(text, expected):
    with pytest.raises(SweepError) as info:
        SweepSpec.load(text)
    message = str(info.value)
    assert expected in message and "\n" not in message and message.startswith("sweep spec")


def test_a_spec_expands_slots_seeds_and_ranges_and_plans_its_runs(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: demo\nbase: nrms\nslots: {content: [attention, cnn, pooling], behavior: [attention, "
                    "additive]}\nparams:\n  content.attention.heads: [2, 4]\n  training.lr: {low: 0.0001, "
                    "high: 0.01, log: true}\nseeds: 2\nbudget: {trials: 100}\nsampler: grid\n")
    loaded = SweepSpec.load(path)
    assert loaded.seeds == [2023, 2024] and loaded.slots["predictor"] == ["dot"]
    assert loaded.params["training.lr"].low == 0.0001
    dims = {d.name: d for d in loaded.dimensions()}
    assert dims["training.lr"].values == (0.0001, 0.001, 0.01)
    assert dims["content.attention.heads"].brick == "attention"
    # attention: 2 heads x 3 lr, cnn and pooling: 3 lr each, times 2 behaviours; no duplicates
    assert plan(loaded) == {"configurations": 24, "seeds": 2, "trials": 48, "space": 24}
    assert SweepSpec.load(loaded.to_yaml()) == loaded  # the stored form loads to the same spec
    config = studies.configurations(loaded)[0]
    recipe = studies.recipe_for(loaded, config, 7, "demo-t0")
    assert recipe.training.seed == 7 and recipe.content.params == {"heads": 2} and recipe.name == "demo-t0"
    every = SweepSpec.load({"base": "nrms", "slots": {"content": "all", "behavior": "all", "predictor": "all"},
                            "budget": {"trials": 1000}, "sampler": "grid"})
    assert plan(every)["space"] == 248  # every valid brick triple
    assert plan(SweepSpec.load({"base": "nrms", "params": {"training.lr": {"low": 0.001, "high": 0.01}},
                                "seeds": 3, "budget": {"trials": 10}}))["trials"] == 9  # 3 configurations


# ---- the pruned run state ----------------------------------------------------------------------
def test_a_space_with_a_configuration_that_cannot_run_is_refused_before_the_sweep(cache):
    """Issue 19 item 7: heads 3 do not divide dim 64; the sweep is refused, naming that configuration,
    before any study or trial exists (a grid, and the ends of a range for a search)."""
    grid = spec(slots={}, params={"content.attention.heads": [3, 4], "training.dim": [64]})
    with pytest.raises(SweepError, match=r"content.attention.heads=3, training.dim=64 cannot run: .*divide"):
        studies.create(grid)
    search = spec(slots={}, sampler="tpe", params={"content.attention.heads": [4],
                                                    "training.dim": {"low": 62, "high": 64, "step": 2}})
    with pytest.raises(SweepError, match=r"training.dim=62.* cannot run"):
        studies.create(search)
    assert studies.list_sweeps() == []
    assert studies.create(spec(slots={}, params={"content.attention.heads": [2, 4], "training.dim": [64]}))


def test_a_sweep_stops_after_trials_fail_in_a_row(cache, capsys):
    """Runs that all fail (a broken trainer) stop the sweep after MAX_FAILURES_IN_A_ROW trials, with
    the reason in the worker's result and the sweep's status, instead of failing trial after trial."""
    from lego_core import sweeps
    from lego_core.sweeps.worker import MAX_FAILURES_IN_A_ROW

    broken = [sys.executable, "-c", "import sys; print('boom: no data'); sys.exit(3)", "{run_dir}"]
    sweep_id = sweeps.create(spec(slots={}, sampler="random", budget={"trials": 100}, max_concurrent=1,
                                  params={"training.lr": {"low": 0.0001, "high": 0.1}}, command=broken))
    result = sweeps.work(sweep_id, poll=0.1, echo=False)
    assert result["stopped"].startswith(f"{MAX_FAILURES_IN_A_ROW} trials failed in a row (the last: ")
    assert "boom: no data" in result["stopped"]
    snap, trials = finished(sweep_id)
    failed = [t for t in trials.values() if t.state.name == "FAIL" and "skipped" not in t.user_attrs]
    assert MAX_FAILURES_IN_A_ROW <= len(failed) <= MAX_FAILURES_IN_A_ROW + 2  # the ones in flight at most
    summary = snap.summary()
    assert summary["state"] == "paused" and summary["stopped"] == result["stopped"]
    from lego_core.cli.main import main

    capsys.readouterr()
    assert main(["sweep", "status", sweep_id]) == 0
    assert f"stopped: {result['stopped']}" in capsys.readouterr().out


def test_the_optuna_adapter_matches_the_pinned_optuna(tmp_path):
    """The one private Optuna name lego_core uses (a trial reopened by a worker that adopts it)
    works with the Optuna version requirements.txt pins; an upgrade fails here first."""
    import optuna

    from lego_core.sweeps import optuna_adapter

    pinned = next(line.split("==")[1].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("optuna=="))
    assert optuna.__version__ == pinned == optuna_adapter.PINNED
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'adapter.db'}", direction="maximize")
    asked = study.ask()
    asked.suggest_float("x", 0.0, 1.0)
    [frozen] = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    reopened = optuna_adapter.reopen(study, frozen)
    reopened.report(0.5, 1)
    reopened.set_user_attr("run_id", "r1")
    study.tell(reopened, 0.75)
    [done] = study.get_trials()
    assert (done.number, done.state.name, done.value, done.intermediate_values, done.user_attrs) == \
        (asked.number, "COMPLETE", 0.75, {1: 0.5}, {"run_id": "r1"})


def test_prune_stops_a_run_and_records_pruned_which_resumes_like_cancelled(cache, fake):
    from lego_core.bricks.recipe import Recipe

    run_id = jobs.launch(Recipe.preset("nrms").with_overrides({"training.epochs": 50}), device="cpu",
                         command=fake(0.3))
    run = runs.open(run_id)
    deadline = time.monotonic() + 30
    while not run.history("epochs"):
        assert time.monotonic() < deadline, jobs.logs(run_id)
        time.sleep(0.05)
    final = jobs.prune(run_id, note="pruned by a test")
    assert final["state"] == "pruned" and final["note"] == "pruned by a test"
    assert runs.open(run_id).state == "pruned" and "pruned" in runs.FINAL_STATES
    assert jobs.prune(run_id)["state"] == "pruned"  # twice is harmless
    assert jobs.resume(run_id) == run_id
    assert jobs.cancel(run_id)["state"] == "cancelled"


# ---- workers --------------------------------------------------------------------------------------
def test_pruning_stops_runs_that_fall_behind(cache, fake):
    """One configuration, three seeds run one after another; the median pruner (after one finished
    trial) stops the later seeds, which score lower, after their first epoch."""
    from lego_core import sweeps

    sweep_id = sweeps.run(spec(slots={"content": ["attention"]}, seeds=[1, 2, 3], max_concurrent=1,
                               set={"training.epochs": 6},
                               pruner={"name": "median", "startup_trials": 1, "min_epochs": 1},
                               command=fake(0.4)), poll=0.1, echo=False)
    snap, trials = finished(sweep_id)
    states = {t.user_attrs["seed"]: t.state.name for t in trials.values() if "skipped" not in t.user_attrs}
    assert states[1] == "COMPLETE" and "PRUNED" in states.values()
    for t in trials.values():
        if t.state.name == "PRUNED" and "run_id" in t.user_attrs:
            status = runs.open(t.user_attrs["run_id"]).status()
            assert status["state"] == "pruned" and "pruned by sweep" in status["note"]
            assert len(t.intermediate_values) < 6
    assert snap.summary()["state"] == "finished"
    table = snap.table()
    assert table.iloc[0]["pruned"] >= 1
    table.loc[0, "rank"] = None  # a configuration whose every seed was pruned has no rank
    assert "| - | attention |" in sweep_cli.markdown(table, "auc")


def test_resume_after_the_worker_is_killed_repeats_and_loses_nothing(cache, fake):
    """SIGKILL the worker mid-sweep (its runs go on), kill one run too (a lost process), then
    resume: every configuration and seed gets exactly one run, and every trial ends complete."""
    from lego_core import sweeps

    sweep_id = sweeps.create(spec(seeds=2, command=fake(0.5)))
    proc = worker_process(sweep_id)
    deadline = time.monotonic() + 60
    while True:
        snap, trials = finished(sweep_id)
        started = [t for t in trials.values() if t.state.name == "RUNNING" and "run_id" in t.user_attrs]
        if len(started) >= 2 and any(t.state.name == "COMPLETE" for t in trials.values()) or len(started) >= 3:
            break
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else trials
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    live = [runs.open(t.user_attrs["run_id"]) for t in started]
    victim = next((r for r in live if r.state == "running" and r.status().get("supervisor_pid")), None)
    if victim is not None:
        os.killpg(victim.status()["supervisor_pid"], signal.SIGKILL)  # its run is lost too
    assert leaderboard.Snapshot.load(sweep_id).summary()["state"] == "paused"
    sweeps.work(sweep_id, poll=0.1, echo=False)  # the resume, in this process
    snap, trials = finished(sweep_id)
    done = [t for t in trials.values() if "skipped" not in t.user_attrs]
    assert sorted(t.state.name for t in done) == ["COMPLETE"] * 4
    pairs = [(t.user_attrs["config"], t.user_attrs["seed"]) for t in done]
    assert len(set(pairs)) == 4
    run_ids = [t.user_attrs["run_id"] for t in done]
    assert sorted(run_ids) == sorted(r.id for r in runs.list())  # one run per trial, none extra
    assert all(runs.open(r).state == "succeeded" for r in run_ids)
    if victim is not None:  # its lost run was resumed (from its checkpoint when it had written one)
        assert runs.open(victim.id).status()["resumes"] == 1
    assert snap.summary()["state"] == "finished"
    table = snap.table()
    assert list(table["seeds"]) == [2, 2] and table.iloc[0]["content"] == "attention"


def test_a_stopped_sweep_pauses_its_runs_and_resume_continues_them(cache, fake):
    """`sweep stop` (SIGTERM): the worker cancels its runs with a checkpoint and exits; a resume
    continues those runs (no new ones) and finishes the sweep."""
    from lego_core import sweeps

    sweep_id = sweeps.create(spec(set={"training.epochs": 4}, command=fake(0.5)))
    proc = worker_process(sweep_id)
    deadline = time.monotonic() + 60
    while not ((cache / "runs").exists() and any(r.history("epochs") for r in runs.list())):  # an epoch done
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    assert sweeps.stop(sweep_id) == [proc.pid]
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped by SIGTERM" in out, out
    paused = runs.list()
    assert paused and all(r.state == "cancelled" for r in paused)
    assert leaderboard.Snapshot.load(sweep_id).summary()["state"] == "paused"
    sweeps.work(sweep_id, poll=0.1, echo=False)
    snap, trials = finished(sweep_id)
    assert sorted(t.state.name for t in trials.values()) == ["COMPLETE"] * 2
    assert sorted(r.id for r in runs.list()) == sorted(r.id for r in paused)  # the same runs, continued
    assert all(r.state == "succeeded" and r.status()["resumes"] == 1 for r in runs.list())


def test_a_trial_whose_worker_died_before_launching_gets_its_run(cache, fake):
    from lego_core import sweeps

    sweep_id = sweeps.create(spec(command=fake(0.1), set={"training.epochs": 1}))
    study, loaded = studies.open_for_work(sweep_id, None, 0)
    trial = study.ask()
    config = studies.suggest(trial, loaded)
    trial.set_user_attr("owner", {"host": os.uname().nodename, "pid": 2 ** 22 + 17, "ticks": 1, "boot": None})
    sweeps.work(sweep_id, poll=0.1, echo=False)
    snap, trials = finished(sweep_id)
    assert trials[trial.number].state.name == "COMPLETE"
    assert studies.config_key(config) == trials[trial.number].user_attrs["config"]
    assert len(runs.list()) == 2 and snap.summary()["counts"]["succeeded"] == 2


def test_two_workers_on_one_sqlite_file_share_the_trials(cache, fake, tmp_path):
    from lego_core import sweeps

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    sweep_id = sweeps.create(spec(slots={"content": ["attention", "cnn", "pooling"]}, seeds=2,
                                  set={"training.epochs": 2}, command=fake(0.6)), storage=storage)
    procs = [worker_process(sweep_id, "--storage", storage) for _ in range(2)]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    snap, trials = finished(sweep_id, storage)
    done = [t for t in trials.values() if "skipped" not in t.user_attrs]
    assert sorted(t.state.name for t in done) == ["COMPLETE"] * 6
    assert len({(t.user_attrs["config"], t.user_attrs["seed"]) for t in done}) == 6
    assert len({t.user_attrs["run_id"] for t in done}) == 6 == len(runs.list())
    assert len({t.user_attrs["owner"]["pid"] for t in done}) == 2  # both workers served trials
    assert snap.summary()["state"] == "finished"
    assert list(snap.table()["content"]) == ["attention", "cnn", "pooling"]


# ---- real training ----------------------------------------------------------------------------------
TINY = {"dataset.name": "synthetic",
        "dataset.options": {"n_items": 120, "n_users": 60, "n_topics": 4, "history_len": 6, "n_impressions": 80,
                            "impression_size": 5, "title_len": 6, "seed": 1},
        "training.epochs": 2, "training.max_steps_per_epoch": 2, "training.dim": 16, "training.batch_size": 16,
        "training.negatives": 2, "training.glove": False, "training.max_length": 8, "training.max_history": 6,
        "training.eval_batch_size": 256, "training.amp": False}


@pytest.mark.slow
def test_a_small_grid_of_real_runs_end_to_end(cache, capsys):
    from lego_core import sweeps
    from lego_core.cli.main import main

    sweep_id = sweeps.run({"name": "tiny", "base": "nrms", "set": TINY,
                           "slots": {"content": ["pooling", "idembed"], "behavior": ["pooling"]},
                           "seeds": 2, "budget": {"trials": 8}, "sampler": "grid", "device": "cpu"}, poll=0.2)
    snap, trials = finished(sweep_id)
    assert sorted(t.state.name for t in trials.values()) == ["COMPLETE"] * 4
    table = snap.table()
    assert list(table["rank"]) == [1, 2] and list(table["seeds"]) == [2, 2]
    assert table["std"].notna().all() and (table["low"] <= table["mean"]).all()
    assert table["train_seconds"].gt(0).all() and table["parameters"].gt(0).all()
    for t in trials.values():  # each trial is a normal run: metrics, epochs, embeddings
        run = runs.open(t.user_attrs["run_id"])
        assert run.state == "succeeded" and len(run.history("epochs")) == 2
        assert run.recipe().training.seed == t.user_attrs["seed"] and run.item_embeddings()[1].shape[1] == 16
        assert t.value == pytest.approx(run.metrics()["valid"]["auc"])
        assert sorted(t.intermediate_values) == [1, 2]
    capsys.readouterr()
    assert main(["sweep", "status", sweep_id]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "| 1 |" in out
    assert main(["sweep", "export", sweep_id, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("rank,config,content")
    assert main(["sweep", "status"]) == 0 and sweep_id in capsys.readouterr().out
    assert main(["sweep", "run", "no-such-spec.yaml"]) == 2
    assert "not found" in capsys.readouterr().err
    assert sweep_cli.markdown(table, "auc").count("\n") == 3
