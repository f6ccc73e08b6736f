"""The scheduler's decision, `jobs.plan(statuses, devices)`: a pure function, tested without processes.

Each case lists run statuses (oldest first) and what the machine offers, and the starts expected:
(run id, GPUs) in the order they start.
"""
from __future__ import annotations

import pytest

from lego_core.core import devices as lego_devices
from lego_core.core.errors import RunError
from lego_core.jobs import Devices, plan


def queued(device="cpu", at=0.0, nproc=1, **extra):
    """A run waiting for a slot (as launch/resume leave it)."""
    return {"state": "queued", "device": device, "nproc": nproc, "queued_at": at,
            "launch": {"device": device, "nproc": nproc}, **extra}


def running(device="cpu", gpus=None, **extra):
    """A started run holding a slot."""
    return {"state": "running", "device": device, "gpus": gpus, "token": "t", **extra}


CASES = {
    "cpu: the default limit of two starts the two oldest": (
        {"a": queued(at=1), "b": queued(at=2), "c": queued(at=3)}, Devices(), [("a", None), ("b", None)]),
    "cpu: running runs hold their slots": (
        {"r": running(), "a": queued(at=1), "b": queued(at=2)}, Devices(), [("a", None)]),
    "cpu: full, nothing starts": (
        {"r1": running(), "r2": running(), "a": queued()}, Devices(), []),
    "cpu: a queued run that has started (token) holds a slot": (
        {"s": queued(token="t"), "r": running(), "a": queued()}, Devices(), []),
    "cpu: $LEGO_MAX_CONCURRENT for every device": (
        {"a": queued(at=1), "b": queued(at=2), "c": queued(at=3)}, Devices(max_concurrent="3"),
        [("a", None), ("b", None), ("c", None)]),
    "cpu: a run's max_concurrent overrides the machine's": (
        {"r": running(), "a": queued(at=1, max_concurrent=1), "b": queued(at=2, max_concurrent=3)},
        Devices(max_concurrent="1"), [("b", None)]),
    "cpu: finished runs hold nothing, runs without a launch part never start": (
        {"f": {"state": "failed", "device": "cpu"}, "i": {"state": "interrupted", "device": "cpu"},
         "x": {"state": "queued", "device": "cpu"}, "a": queued()}, Devices(max_concurrent=1), [("a", None)]),
    "fifo: queued_at order, not the order given; then created; ties by run id": (
        {"late": queued(at=5), "b": queued(at=2), "a": queued(at=2), "old": queued(at=None, created=1)},
        Devices(max_concurrent=3), [("old", None), ("a", None), ("b", None)]),
    "fifo: a run that does not fit does not block a later one that does": (
        {"r": running("cuda", [0]), "big": queued("cuda", at=1, nproc=2), "small": queued("cuda", at=2)},
        Devices(cuda_count=2), [("small", [1])]),
    "gpu: one run per GPU by default, least used GPU first": (
        {"a": queued("cuda", at=1), "b": queued("cuda", at=2), "c": queued("cuda", at=3)},
        Devices(cuda_count=2), [("a", [0]), ("b", [1])]),
    "gpu: slots per GPU from max_concurrent": (
        {"r": running("cuda", [0]), "a": queued("cuda", at=1), "b": queued("cuda", at=2), "c": queued("cuda", at=3)},
        Devices(cuda_count=2, max_concurrent=2), [("a", [1]), ("b", [0]), ("c", [1])]),
    "gpu: no GPU, no CUDA start": (
        {"a": queued("cuda")}, Devices(cuda_count=0), []),
    "gpu: cuda:N waits for its own GPU": (
        {"r": running("cuda:1", None), "a": queued("cuda:1", at=1), "b": queued("cuda:0", at=2)},
        Devices(cuda_count=2), [("b", [0])]),
    "gpu: cuda:N with two slots on it": (
        {"r": running("cuda:1", [1]), "a": queued("cuda:1", at=1, max_concurrent=2)},
        Devices(cuda_count=2), [("a", [1])]),
    "gpu: nproc>1 takes that many free GPUs at once": (
        {"r": running("cuda", [1]), "a": queued("cuda", at=1, nproc=2), "b": queued("cuda", at=2, nproc=2)},
        Devices(cuda_count=4), [("a", [0, 2])]),
    "gpu: nproc>1 waits when too few GPUs are free": (
        {"r": running("cuda", [0]), "a": queued("cuda", nproc=2)}, Devices(cuda_count=2), []),
    "devices: CPU and GPU slots are separate": (
        {"r1": running(), "r2": running(), "g": queued("cuda", at=1), "c": queued("cpu", at=2)},
        Devices(cuda_count=1), [("g", [0])]),
    "devices: other kinds (mps) get one slot": (
        {"a": queued("mps", at=1), "b": queued("mps", at=2)}, Devices(), [("a", None)]),
}


@pytest.mark.parametrize("statuses, devices, expected", CASES.values(), ids=CASES.keys())
def test_plan(statuses, devices, expected):
    before = repr(statuses)
    assert plan(statuses, devices) == expected
    assert repr(statuses) == before  # the statuses given are left as they are


def test_plan_is_pure(monkeypatch):
    """No GPU count, environment or process is consulted: only the arguments."""
    monkeypatch.setattr(lego_devices, "cuda_count", lambda: pytest.fail("plan() counted GPUs"))
    monkeypatch.setenv("LEGO_MAX_CONCURRENT", "5")
    statuses = {"a": queued(at=1), "b": queued(at=2), "c": queued(at=3), "g": queued("cuda", at=4)}
    assert plan(statuses, Devices(cuda_count=1)) == [("a", None), ("b", None), ("g", [0])]


@pytest.mark.parametrize("statuses, devices, message", [
    ({"a": queued(max_concurrent=0)}, Devices(), "max_concurrent must be a whole number >= 1"),
    ({"a": queued()}, Devices(max_concurrent="two"), r"\$LEGO_MAX_CONCURRENT must be a whole number >= 1"),
])
def test_plan_refuses_bad_limits(statuses, devices, message):
    with pytest.raises(RunError, match=message):
        plan(statuses, devices)


def test_devices_here_reads_the_environment(monkeypatch):
    monkeypatch.setattr(lego_devices, "cuda_count", lambda: 3)
    monkeypatch.setenv("LEGO_MAX_CONCURRENT", "4")
    assert Devices.here() == Devices(cuda_count=3, max_concurrent="4")
    monkeypatch.delenv("LEGO_MAX_CONCURRENT")
    assert Devices.here(cuda=False) == Devices(cuda_count=0)
    assert Devices().limit("cpu") == 2 and Devices().limit("cuda:1") == 1 and Devices().limit("cpu", 7) == 7
