"""The typed run status: one writer per part, the state of the part that changed last, and the flat
view pages and the CLI read — through a run's whole life (launch, start, train, end, kill, resume)."""
from __future__ import annotations

import pytest

from lego_core.runs.status import RunStatus


def life(*steps):
    """Apply (part, fields) steps at times 1, 2, 3, ...; return the status after each."""
    status, seen = RunStatus(created=0.0), []
    for t, (part, fields) in enumerate(steps, start=1):
        status = status.merged(part, fields, float(t))
        seen.append(status)
    return seen


def test_a_launched_run_that_succeeds():
    queued, started, training, progress, done, supervised = life(
        ("job", {"state": "queued", "launch": {"device": "cpu"}, "device": "cpu", "queued_at": 1.0}),
        ("job", {"state": "running", "token": "t", "started": 2.0, "supervisor_pid": 10}),
        ("training", {"state": "running", "pid": 11, "started": 3.0, "device": "cpu"}),
        ("training", {"progress": 0.5, "epoch": 0}),
        ("training", {"state": "succeeded", "ended": 5.0, "progress": 1.0}),
        ("job", {"state": "succeeded", "exit_code": 0, "ended": 6.0}))
    assert [s.state for s in (queued, started, training, progress, done, supervised)] == \
        ["queued", "running", "running", "running", "succeeded", "succeeded"]
    assert started.view()["pid"] == 10 and training.view()["pid"] == 11  # the trainer's pid once it runs
    assert progress.view()["progress"] == 0.5 and "token" not in queued.view()
    assert supervised.view()["ended"] == 6.0 and supervised.view()["exit_code"] == 0


def test_a_killed_trainer_is_interrupted_and_a_resume_queues_it_again():
    *_, killed, resumed, restarted = life(
        ("job", {"state": "running", "token": "t", "started": 1.0}),
        ("training", {"state": "running", "pid": 11, "started": 2.0, "progress": 0.4}),
        ("job", {"state": "interrupted", "error": "killed by SIGKILL", "ended": 3.0}),
        ("job", {"state": "queued", "token": None, "started": None, "ended": None, "error": None, "resumes": 1}),
        ("job", {"state": "running", "token": "u", "started": 5.0}))
    assert killed.state == "interrupted" and killed.view()["error"] == "killed by SIGKILL"
    view = resumed.view()
    assert view["state"] == "queued" and "pid" not in view and "ended" not in view  # nothing runs it
    assert view["progress"] == 0.4 and view["resumes"] == 1  # the earlier attempt's progress stays
    assert restarted.state == "running" and "pid" not in restarted.view()  # the old trainer is not this start's


def test_a_trainer_error_stays_when_the_supervisor_records_the_same_end():
    *_, failed, supervised = life(
        ("job", {"state": "running", "started": 1.0}),
        ("training", {"state": "running", "started": 2.0}),
        ("training", {"state": "failed", "error": "training diverged"}),
        ("job", {"state": "failed", "exit_code": 1}))
    assert supervised.state == "failed" and supervised.view()["error"] == "training diverged"


def test_a_foreground_run_resumed_after_the_scheduler_marked_it_interrupted():
    *_, marked, again = life(
        ("training", {"state": "running", "pid": 11, "started": 1.0}),
        ("job", {"state": "interrupted", "error": "vanished"}),
        ("training", {"state": "running", "pid": 12, "started": 3.0}))
    assert marked.state == "interrupted" and again.state == "running" and again.view()["pid"] == 12


def test_a_first_job_write_without_a_state_does_not_decide():
    running, requested = life(("training", {"state": "running", "started": 1.0}),
                              ("job", {"cancel_requested": True, "cancel_timeout": 5.0}))
    assert requested.state == "running" and requested.view()["cancel_requested"] is True


def test_each_part_has_its_own_keys_and_states():
    status = RunStatus(created=0.0)
    for part, fields in (("training", {"token": "t"}), ("job", {"progress": 0.5}), ("job", {"changed": 3.0}),
                         ("training", {"state": "exploded"})):
        with pytest.raises(ValueError):
            status.merged(part, fields, 1.0)


def test_flat_files_of_earlier_versions_are_read():
    launched = RunStatus.from_json({"state": "succeeded", "created": 1.0, "launch": {"device": "cpu"},
                                    "token": "t", "pid": 7, "progress": 1.0, "environment": {"torch": "x"},
                                    "started": 2.0, "ended": 3.0, "device": "cpu"})
    assert launched.state == "succeeded" and launched.view()["progress"] == 1.0
    foreground = RunStatus.from_json({"state": "running", "created": 1.0, "pid": 7})
    assert foreground.state == "running" and foreground.job is None
    for bad in ([1], {"job": {"state": "nope"}}, {"training": {"token": "x"}}):
        with pytest.raises(ValueError):
            RunStatus.from_json(bad)
