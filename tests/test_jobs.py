"""Background jobs: scheduling, cancel, vanished processes and resume.

The first tests swap the trainer for a small stand-in script (`launch(command=...)`) to check the
scheduler and the supervisor quickly; the tests at the end run the real training in the background
(single process and 2-process torchrun with gloo) on a tiny synthetic dataset.
"""
from __future__ import annotations

import json
import os
import subprocess
import signal
import socket
import sys
import time

import pytest

from lego_core import jobs, runs
from lego_core.core import devices
from lego_core.runs import recommend
from lego_core.jobs import launcher, scheduler
from lego_core.cli import jobs as jobs_cli
from lego_core.core.errors import RecipeError, RunError

FAKE_TRAINER = r'''
import os, signal, sys, time
from lego_core import runs
run = runs.open(sys.argv[1])
resumed = "--resume" in sys.argv
seconds, mode = float(sys.argv[4] if resumed else sys.argv[2]), sys.argv[3]
def handle(signum, frame):
    if mode != "ignore":
        run.set_training_status(state="cancelled", ended=time.time())
        sys.exit(0)
signal.signal(signal.SIGTERM, handle)
run.set_training_status(state="running", pid=os.getpid(), started=time.time())
run.checkpoint_path("last").write_bytes(b"checkpoint")
end = time.time() + seconds
while time.time() < end:
    time.sleep(0.05)
if mode == "fail":
    print("boom: the data loader broke", flush=True)
    sys.exit(3)
run.write_metrics({"auc": 0.5, "resumed": resumed})
run.set_training_status(state="succeeded", ended=time.time(), progress=1.0)
if mode == "linger":  # its end is recorded, but the process (and so its supervisor) goes on a while
    time.sleep(1.5)
'''


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LEGO_MAX_CONCURRENT", raising=False)
    base = tmp_path / "cache" / "runs"
    yield base
    _kill_all(base)


def _kill_all(base):
    """Leave no process behind, whatever the test did."""
    if not base.exists():
        return
    scan = jobs.process.token_pids() or {}
    for run in scheduler.job_folders(base):  # training runs and generation jobs
        token = run.status().get("token")
        for pid in scan.get(token, []) if token else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def fake(tmp_path):
    """The stand-in trainer's command for `launch(command=...)`: fake(seconds, mode, resumed=seconds)
    with mode obey|ignore|fail (SIGTERM handling) or linger (exits 1.5 s after recording success); a
    resumed run (--resume) lasts `resumed` seconds."""
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)

    def command(seconds: float = 0.2, mode: str = "obey", resumed: float | None = None) -> list[str]:
        return [sys.executable, str(script), "{run_dir}", str(seconds), mode,
                str(seconds if resumed is None else resumed), "{resume}"]
    return command


def fake_by_default(monkeypatch, command):
    """Launches that cannot pass `command` (the CLI) start the stand-in: this process's default argv."""
    monkeypatch.setattr(launcher, "trainer_argv",
                        lambda run, launch, resume: launcher.fill_command(command, run, resume))


def _recipe():
    from lego_core.bricks.recipe import Recipe

    return Recipe.preset("nrms")


def wait_for(run_id, states, root, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        status = jobs.status(run_id, root)
        finished = status["state"] in runs.FINAL_STATES and not jobs.run_pids(status)
        if status["state"] in states and (finished or status["state"] not in runs.FINAL_STATES):
            return runs.open(run_id, root).status()  # final: the supervisor has recorded the end too
        if time.monotonic() > deadline:
            log = jobs.logs(run_id, root=root)
            raise AssertionError(f"run {run_id} stayed {status['state']} (wanted {states}); log:\n{log}")
        time.sleep(0.1)


def wait_trainer(run_id, root, timeout=30.0):
    """Wait until the trainer itself runs (it has written its own pid)."""
    run = runs.open(run_id, root)
    deadline = time.monotonic() + timeout
    while run.status().get("pid") in (None, run.status().get("supervisor_pid")):
        assert time.monotonic() < deadline, f"the trainer of {run_id} never started: {run.status()}"
        time.sleep(0.05)
    return run.status()


def test_launch_runs_in_the_background_and_records_the_trainer(root, fake):
    run_id = jobs.launch(_recipe(), device="cpu", root=root, command=fake(0.3))
    run = runs.open(run_id, root)
    assert run.status()["state"] in ("running", "succeeded")
    status = wait_for(run_id, ("succeeded",), root)
    assert status["pid"] != status["supervisor_pid"]  # the trainer's own pid replaced the supervisor's
    assert status["exit_code"] == 0 and status["device"] == "cpu" and status["ended"] >= status["started"]
    assert run.metrics() == {"auc": 0.5, "resumed": False}
    log = jobs.logs(run_id, root=root)
    assert "starting:" in log and "exited with code 0" in log
    assert jobs.logs(run_id, tail=1, root=root).count("\n") == 0
    assert [r.id for r in jobs.list_runs(root)] == [run_id]


def test_three_runs_with_a_limit_of_two_run_two_then_one(root, fake):
    ids = [jobs.launch(_recipe(), device="cpu", root=root, max_concurrent=2, command=fake(1.5)) for _ in range(3)]
    states = [runs.open(i, root).status()["state"] for i in ids]
    assert states == ["running", "running", "queued"]
    finals = [wait_for(i, ("succeeded",), root) for i in ids]
    first_end = min(finals[0]["ended"], finals[1]["ended"])
    assert finals[2]["started"] >= first_end > max(finals[0]["started"], finals[1]["started"])


def test_env_limit_and_cancel_of_queued_and_running_runs(root, fake, monkeypatch):
    monkeypatch.setenv("LEGO_MAX_CONCURRENT", "1")
    first = jobs.launch(_recipe(), device="cpu", root=root, command=fake(30))
    second = jobs.launch(_recipe(), device="cpu", root=root, command=fake(30))
    assert jobs.status(second, root)["state"] == "queued"
    final = jobs.cancel(second, root=root)
    assert final["state"] == "cancelled" and "token" not in final  # never started
    status = wait_trainer(first, root)
    started = time.monotonic()
    assert jobs.cancel(first, timeout=10, root=root)["state"] == "cancelled"
    assert time.monotonic() - started < 8  # graceful: the trainer handled SIGTERM
    assert jobs.run_pids(status) == []
    assert "exited with code 0" in jobs.logs(first, root=root)
    assert jobs.cancel(first, root=root)["state"] == "cancelled"  # cancelling twice is harmless
    runs.open(first, root).set_training_status(state="succeeded", started=time.time())
    with pytest.raises(RunError, match="only queued or running"):
        jobs.cancel(first, root=root)


def test_cancel_kills_a_trainer_that_ignores_sigterm(root, fake):
    run_id = jobs.launch(_recipe(), device="cpu", root=root, command=fake(60, "ignore"))
    status = wait_trainer(run_id, root)
    started = time.monotonic()
    final = jobs.cancel(run_id, timeout=1, root=root)
    assert final["state"] == "cancelled" and time.monotonic() - started < 10
    assert jobs.run_pids(status) == []
    # without waiting: cancel returns at once and the supervisor escalates to SIGKILL itself
    second = jobs.launch(_recipe(), device="cpu", root=root, command=fake(60, "ignore"))
    status = wait_trainer(second, root)
    started = time.monotonic()
    assert jobs.cancel(second, timeout=1, root=root, wait=False)["state"] == "running"
    assert time.monotonic() - started < 1
    final = wait_for(second, ("cancelled",), root, timeout=20)
    assert jobs.run_pids(status) == [] and "did not stop in time" in jobs.logs(second, root=root)


def test_a_killed_run_is_interrupted_and_resumes(root, fake):
    run_id = jobs.launch(_recipe(), device="cpu", root=root, command=fake(30, resumed=0.2))
    wait_for(run_id, ("running",), root)
    run = runs.open(run_id, root)
    while not run.checkpoint_path("last").exists():
        time.sleep(0.05)
    os.killpg(run.status()["supervisor_pid"], signal.SIGKILL)  # supervisor and trainer gone, like a crash
    status = wait_for(run_id, ("interrupted",), root)
    assert "vanished" in status["error"]
    assert jobs.resume(run_id, root=root) == run_id  # the stand-in, resumed, lasts 0.2 s
    status = wait_for(run_id, ("succeeded",), root)
    assert status["resumes"] == 1 and status["resumed_from_checkpoint"] is True
    assert run.metrics()["resumed"] is True  # the trainer got --resume
    with pytest.raises(RunError, match="can be resumed"):
        jobs.resume(run_id, root=root)


def test_trainer_killed_alone_is_recorded_by_its_supervisor(root, fake):
    run_id = jobs.launch(_recipe(), device="cpu", root=root, command=fake(30))
    os.kill(wait_trainer(run_id, root)["pid"], signal.SIGKILL)
    status = wait_for(run_id, ("interrupted",), root)
    assert "SIGKILL" in status["error"]
    jobs.delete(run_id, root)
    assert runs.list(root) == []


def test_a_failing_trainer_is_failed_with_its_last_log_line(root, fake):
    run_id = jobs.launch(_recipe(), device="cpu", root=root, command=fake(0.1, "fail"))
    status = wait_for(run_id, ("failed",), root)
    assert status["exit_code"] == 3 and "boom: the data loader broke" in status["error"]


def test_stale_states_are_detected_without_a_daemon(root):
    dead = runs.create(_recipe(), root=root)
    dead.set_job_status(state="running", token=f"{dead.id}:gone", supervisor_pid=os.getpid(),
                        host=socket.gethostname())  # our pid, but not carrying the token: reused
    foreground_dead = runs.create(_recipe(), root=root)
    foreground_dead.set_training_status(state="running", pid=2 ** 22 + 12345, started=time.time())
    foreground_live = runs.create(_recipe(), root=root)
    foreground_live.set_training_status(state="running", pid=os.getpid(), start_ticks=jobs.process.start_ticks(os.getpid()),
                                        started=time.time())
    foreground_unproven = runs.create(_recipe(), root=root)  # a live pid, but nothing proves it is the trainer
    foreground_unproven.set_training_status(state="running", pid=os.getpid(), started=time.time())
    other_host = runs.create(_recipe(), root=root)
    other_host.set_training_status(state="running", pid=2 ** 22 + 12345, host="another-node")
    rebooted = runs.create(_recipe(), root=root)
    rebooted.set_job_status(state="running", boot_id="an-earlier-boot", started=time.time())
    rebooted.set_training_status(state="running", pid=os.getpid(), started=time.time())
    with pytest.raises(RunError, match="cancel it first"):
        runs.delete(foreground_dead.id, root)  # the store alone cannot tell it is stale...
    jobs.refresh(root)
    assert dead.status()["state"] == "interrupted"
    assert foreground_dead.status()["state"] == "interrupted"
    assert foreground_live.status()["state"] == "running"
    assert foreground_unproven.status()["state"] == "interrupted"
    assert other_host.status()["state"] == "running"
    assert rebooted.status()["state"] == ("interrupted" if jobs.process.boot_id() else "running")
    jobs.delete(foreground_dead.id, root)  # ...jobs.delete refreshes first
    with pytest.raises(RunError, match="cancel it first"):
        jobs.delete(foreground_live.id, root)


@pytest.fixture
def bystander():
    """An unrelated process (a `sleep`) whose pid a forged status names."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("part", ["job", "training"])
def test_a_forged_pid_is_never_signalled(root, bystander, part):
    """Regression: cancel killed whatever process held the pid written in status.json (an unrelated
    `sleep`, or pid 1). A pid is only signalled once its run token or recorded start time proves it
    is the run's; otherwise the run is marked interrupted and nothing is signalled."""
    for pid in (bystander.pid, 1):
        run = runs.create(_recipe(), root=root)
        if part == "job":  # a job status naming a foreign supervisor (its token is nowhere)
            run.set_job_status(state="running", token=f"{run.id}:forged", supervisor_pid=pid,
                               supervisor_start_ticks=12345, host=socket.gethostname(), started=time.time())
        else:  # a foreground trainer's status naming a foreign pid, with and without a start time
            run.set_training_status(state="running", pid=pid, started=time.time(),
                                    start_ticks=None if pid == 1 else 12345)
        assert jobs.run_pids(run.status()) == []
        final = jobs.cancel(run.id, timeout=1, root=root)
        assert final["state"] == "interrupted" and "nothing was signalled" in final["error"]
        assert bystander.poll() is None  # still running: never signalled
    bystander_status = {"pid": bystander.pid, "start_ticks": jobs.process.start_ticks(bystander.pid)}
    assert jobs.run_pids(bystander_status) == [bystander.pid]  # the recorded start time is the proof
    from lego_core.sweeps import sessions  # a sweep worker's session is proven the same way before a pause
    here = socket.gethostname()
    assert not sessions.alive({"host": here, "pid": bystander.pid, "ticks": None})
    assert not sessions.alive({"host": here, "pid": 1, "ticks": jobs.process.start_ticks(1)})
    assert sessions.alive({"host": here, "pid": bystander.pid, "ticks": bystander_status["start_ticks"]})


def test_malformed_recipes_are_refused_before_anything_starts(root, fake):
    command = fake(0.1)
    bad_brick = _recipe().model_dump(mode="json")
    bad_brick["content"]["name"] = "no-such-brick"
    for recipe in (bad_brick, "content: [unclosed\n", {"content": {"name": "attention"}},
                   _recipe().model_dump(mode="json") | {"training": {"epochs": 0}}):
        with pytest.raises(RecipeError):
            jobs.launch(recipe, device="cpu", root=root, command=command)
    with pytest.raises(RunError, match="device"):
        jobs.launch(_recipe(), device="tpu", root=root, command=command)
    with pytest.raises(RunError, match="rdzv_endpoint"):
        jobs.launch(_recipe(), device="cpu", nnodes=2, root=root, command=command)
    with pytest.raises(RunError, match="max_concurrent"):
        jobs.launch(_recipe(), device="cpu", max_concurrent=0, root=root, command=command)
    assert not root.exists()  # no run folder (and so no process) was created


def test_a_command_template_is_checked_stored_and_filled(root):
    for bad in ("python train.py", [], ["python", ""], ["python", 3], {"argv": ["python"]}):
        with pytest.raises(RunError, match="command"):
            jobs.launch(_recipe(), device="cpu", root=root, command=bad)
    assert not root.exists()
    template = ["prog", "--dir={run_dir}", "{resume}", "x"]
    run = runs.create(_recipe(), root=root)
    launch = {"device": "cpu", "nproc": 1, "command": template}
    assert launcher.job_argv(run, launch, resume=False) == ["prog", f"--dir={run.path}", "x"]
    assert launcher.job_argv(run, launch, resume=True) == ["prog", f"--dir={run.path}", "--resume", "x"]
    run_id = jobs.launch(_recipe(), device="cpu", root=root, command=template)
    status = runs.open(run_id, root).status()  # the store carries it to whichever process starts the run
    assert status["launch"]["command"] == template
    assert "starting: prog --dir=" in jobs.logs(run_id, root=root)
    assert wait_for(run_id, ("failed",), root)["exit_code"] == 1  # no program "prog" here


def test_training_commands_for_one_and_several_processes(root):
    run = runs.create(_recipe(), root=root)
    single = launcher.job_argv(run, {"device": "cpu", "nproc": 1}, resume=False)
    assert single == [sys.executable, "-m", "lego_core", "train", "--run-dir", str(run.path), "--quiet",
                      "--set", "training.device=cpu"]
    local = launcher.job_argv(run, {"device": "cpu", "nproc": 2}, resume=True)
    assert local[:6] == [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    assert local[6:] == ["-m", "lego_core", "train", "--run-dir", str(run.path), "--quiet", "--resume",
                         "--set", "training.device=cpu"]
    multi = launcher.job_argv(run, {"device": "cuda:1", "nproc": 4, "nnodes": 2, "node_rank": 1,
                              "rdzv_endpoint": "node0:29400"}, resume=False)
    text = " ".join(multi)
    assert "--nnodes 2 --node_rank 1 --master_addr node0 --master_port 29400" in text
    assert "--standalone" not in text and text.endswith("training.device=cuda")


def test_gpu_slots_are_assigned_per_gpu(monkeypatch):
    monkeypatch.setattr(devices, "cuda_count", lambda: 2)
    busy = [{"device": "cuda", "gpus": [0], "state": "running"}]
    assert scheduler.fit({"device": "cuda", "nproc": 1}, busy) == (True, [1])
    assert scheduler.fit({"device": "cuda", "nproc": 2}, busy) == (False, [1])
    assert scheduler.fit({"device": "cuda:0", "nproc": 1}, busy) == (False, [])
    assert scheduler.fit({"device": "cuda:0", "nproc": 1, "max_concurrent": 2}, busy) == (True, [0])
    assert scheduler.fit({"device": "cpu", "nproc": 4}, busy) == (True, None)


def test_cli_launch_list_status_cancel(root, fake, capsys, monkeypatch):
    fake_by_default(monkeypatch, fake(30))
    assert jobs_cli.main(["jobs", "launch", "nrms", "--device", "cpu", "--set", "training.epochs=1"]) == 0
    run_id = capsys.readouterr().out.split()[0]
    assert runs.open(run_id, root).recipe().training.epochs == 1
    assert jobs_cli.main(["jobs", "list"]) == 0
    assert run_id in capsys.readouterr().out
    assert jobs_cli.main(["jobs", "status", run_id]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == "cpu"
    assert jobs_cli.main(["jobs", "cancel", run_id]) == 0
    assert capsys.readouterr().out.split() == [run_id, "cancelled"]
    fake_by_default(monkeypatch, fake(0.5, "linger"))
    assert jobs_cli.main(["jobs", "launch", "nrms", "--device", "cpu"]) == 0
    followed = capsys.readouterr().out.split()[0]
    # the trainer records `succeeded` 1.5 s before it exits: following goes on to the supervisor's last line
    assert jobs_cli.main(["jobs", "logs", followed, "--follow"]) == 0
    out = capsys.readouterr().out
    assert "exited with code 0" in out and out.rstrip().endswith(jobs.FINAL_LINE)
    assert runs.open(followed, root).status()["state"] == "succeeded"
    assert jobs_cli.main(["jobs", "launch", "no-such-recipe.yaml"]) == 2
    assert "not found" in capsys.readouterr().err


# ---- the real training in the background -------------------------------------------------------
TINY = {"dataset.name": "synthetic",
        "dataset.options": {"n_items": 200, "n_users": 100, "n_topics": 4, "history_len": 8,
                            "n_impressions": 200, "impression_size": 5, "title_len": 6, "seed": 1},
        "training.epochs": 2, "training.dim": 16, "training.batch_size": 32, "training.negatives": 2,
        "training.glove": False, "training.max_length": 8, "training.max_history": 8,
        "training.patience": 5, "training.eval_batch_size": 256, "training.log_every": 1,
        "training.amp": False, "training.seed": 7}


def tiny_recipe(**overrides):
    from lego_core.bricks.recipe import Recipe

    return Recipe.preset("nrms").with_overrides({**TINY, **overrides})


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("real") / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(base))
        patch.delenv("LEGO_MAX_CONCURRENT", raising=False)
        yield base / "runs"
        _kill_all(base / "runs")


@pytest.fixture(scope="module")
def reference(real_root):
    """The tiny recipe trained without interruption (started, not awaited: tests overlap with it)."""
    return jobs.launch(tiny_recipe(), device="cpu", root=real_root)


def _scores(metrics):
    return {split: metrics[split] for split in ("valid", "test")}


@pytest.mark.slow
def test_real_run_interrupted_mid_epoch_resumes_to_identical_metrics(real_root, reference):
    victim = jobs.launch(tiny_recipe(), device="cpu", root=real_root)  # runs alongside the reference
    run = runs.open(victim, real_root)
    deadline = time.monotonic() + 120
    while not any(r.get("epoch") == 1 for r in run.history("steps")):  # a step of the second epoch
        assert run.status()["state"] == "running", (run.status(), jobs.logs(victim, root=real_root))
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(run.status()["supervisor_pid"], signal.SIGKILL)  # the machine "crashes" mid-epoch
    assert wait_for(victim, ("interrupted",), real_root)["state"] == "interrupted"
    assert run.checkpoint_path("last").exists() and not run.metrics()
    jobs.resume(victim, root=real_root)
    assert wait_for(victim, ("succeeded", "failed"), real_root, timeout=120)["state"] == "succeeded", \
        jobs.logs(victim, root=real_root)
    assert runs.open(victim, real_root).status()["resumed_from_checkpoint"] is True
    wait_for(reference, ("succeeded",), real_root, timeout=120)
    assert _scores(run.metrics()) == _scores(runs.open(reference, real_root).metrics())
    assert [r["epoch"] for r in run.history("epochs")] == [1, 2]


@pytest.mark.slow
def test_real_run_succeeds_in_the_background_with_metrics_and_embeddings(real_root, reference):
    status = wait_for(reference, ("succeeded", "failed"), real_root, timeout=120)
    assert status["state"] == "succeeded", jobs.logs(reference, root=real_root)
    run = runs.open(reference, real_root)
    assert 0.0 <= run.metrics()["test"]["auc"] <= 1.0
    item_ids, items = run.item_embeddings()
    user_ids, users = run.user_embeddings()
    assert items.shape == (200, 16) and len(item_ids) == 200 and users.shape[-1] == 16
    top = recommend.recommend(run, user_ids[0], k=5)
    assert len(top) == 5 and top["score"].is_monotonic_decreasing
    assert [r["epoch"] for r in run.history("epochs")] == [1, 2]


@pytest.mark.slow
def test_real_torchrun_two_processes_matches_single_process(real_root, reference):
    run_id = jobs.launch(tiny_recipe(), device="cpu", nproc=2, root=real_root)
    trainer = wait_trainer(run_id, real_root, timeout=120)
    try:
        environ = open(f"/proc/{trainer['pid']}/environ", "rb").read().split(b"\0")
        assert b"RANK=0" in environ and b"WORLD_SIZE=2" in environ  # status holds rank 0's pid
    except FileNotFoundError:  # already finished: nothing left to inspect
        pass
    status = wait_for(run_id, ("succeeded", "failed"), real_root, timeout=180)
    assert status["state"] == "succeeded", jobs.logs(run_id, root=real_root)
    assert status["nproc"] == 2
    run = runs.open(run_id, real_root)
    epochs = run.history("epochs")
    assert [r["epoch"] for r in epochs] == [1, 2]  # one writer: no duplicated lines
    steps = [(r["epoch"], r["step"]) for r in run.history("steps")]
    assert len(steps) == len(set(steps))
    wait_for(reference, ("succeeded",), real_root, timeout=120)
    single = runs.open(reference, real_root)
    for key in ("auc", "mrr"):
        assert abs(run.metrics()["test"][key] - single.metrics()["test"][key]) < 0.08


@pytest.mark.slow
def test_real_run_cancel_checkpoints_and_stops(real_root):
    run_id = jobs.launch(tiny_recipe(**{"training.epochs": 50}), device="cpu", root=real_root)
    run = runs.open(run_id, real_root)
    deadline = time.monotonic() + 120
    while not run.history("steps"):
        assert run.status()["state"] in ("running", "queued") and time.monotonic() < deadline, \
            jobs.logs(run_id, root=real_root)
        time.sleep(0.05)
    final = jobs.cancel(run_id, timeout=30, root=real_root)
    assert final["state"] == "cancelled"
    assert run.checkpoint_path("last").exists()
    assert "cancelled" in jobs.logs(run_id, root=real_root)
