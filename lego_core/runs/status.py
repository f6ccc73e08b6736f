"""A run's status (status.json), typed: a `job` part written only by the job scheduler and its
supervisor (lego_core.jobs), a `training` part written only by the trainer (lego_core.training.train), and
the creation time written once by the run store. Nobody writes another's part.

The run's state is the state of the part that changed state last: a trainer that records
`succeeded` after its job started, a supervisor that records `interrupted` after its trainer
vanished, a resume that queues the job again after the trainer had `cancelled`. `RunStatus.view()`
flattens the two parts into the dict that pages and the CLI show (see docs/architecture.md).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted", "pruned")
ACTIVE_STATES = ("queued", "running")
# pruned: a sweep stopped the run early (its validation metric was not promising); written by
# lego_core.jobs.prune only, into the job part
FINAL_STATES = ("succeeded", "failed", "cancelled", "interrupted", "pruned")
State = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted", "pruned"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Launch(_Part):
    """How `jobs.launch` asked for the run to be started (kept for resumes)."""

    device: str = Field("cpu", description="device the run was launched on (auto resolved)")
    nproc: int = Field(1, description="processes per node (torchrun DDP when > 1)")
    nnodes: int = Field(1, description="machines")
    node_rank: int = Field(0, description="this machine's rank")
    rdzv_endpoint: str | None = Field(None, description="host:port of node 0 (multi-node)")
    resume: bool = Field(False, description="continue from checkpoints/last.pt when started")
    command: list[str] | None = Field(None, description="argv template replacing the trainer")


class JobPart(_Part):
    """Written by lego_core.jobs only: launch, scheduler, supervisor, cancel, resume."""

    state: State = Field("queued", description="the job's view: queued, running, or how it ended (pruned: "
                                               "stopped early by a sweep)")
    changed: float = Field(0.0, description="when `state` last changed (unix seconds)")
    error: str | None = Field(None, description="why the job ended badly (one line)")
    kind: Literal["training", "generation"] = Field("training", description="what the job runs: a training run, "
                                                    "or LLM generation of an item field (lego_core.jobs.generation)")
    launch: Launch | None = Field(None, description="the launch request; None for foreground runs")
    device: str | None = Field(None, description="the device it was scheduled on")
    nproc: int | None = Field(None, description="processes in all (nproc x nnodes)")
    max_concurrent: int | None = Field(None, description="runs at once on its device (None: default)")
    queued_at: float | None = Field(None, description="when it was (re)queued: the FIFO order")
    started: float | None = Field(None, description="when its supervisor was started")
    ended: float | None = Field(None, description="when the job ended")
    token: str | None = Field(None, description="secret carried by every process of this start (LEGO_RUN_TOKEN)")
    supervisor_pid: int | None = Field(None, description="pid of the supervisor process")
    supervisor_start_ticks: int | None = Field(None, description="its start time (pid-reuse check)")
    boot_id: str | None = Field(None, description="machine boot it was started in (reboot check)")
    host: str | None = Field(None, description="machine it was started on")
    gpus: list[int] | None = Field(None, description="GPUs assigned (None off CUDA)")
    cancel_requested: bool = Field(False, description="a cancel was asked for")
    cancel_timeout: float | None = Field(None, description="seconds before SIGKILL after a cancel")
    exit_code: int | None = Field(None, description="the training process's exit code")
    resumes: int = Field(0, description="times it was resumed")
    resumed_from_checkpoint: bool = Field(False, description="this start continues from last.pt")
    note: str | None = Field(None, description="a remark (e.g. a worker node writes no metrics)")


class TrainingPart(_Part):
    """Written by the trainer only (lego_core.training.train, through training_log.RunLog)."""

    state: State = Field("running", description="running, then succeeded, failed or cancelled")
    changed: float = Field(0.0, description="when `state` last changed (unix seconds)")
    error: str | None = Field(None, description="why training failed (one line)")
    pid: int | None = Field(None, description="pid of the trainer (rank 0)")
    start_ticks: int | None = Field(None, description="its start time (proves the pid is still the trainer's)")
    host: str | None = Field(None, description="machine it trains on")
    device: str | None = Field(None, description="torch device of rank 0")
    nproc: int | None = Field(None, description="processes (DDP world size)")
    started: float | None = Field(None, description="when this training attempt started")
    ended: float | None = Field(None, description="when it ended")
    progress: float | None = Field(None, description="fraction of all epochs done, 0..1")
    epoch: int | None = Field(None, description="epoch in progress (0-based)")
    environment: dict[str, Any] | None = Field(None, description="package versions and machine")


class RunStatus(_Part):
    created: float = Field(0.0, description="when the run folder was made")
    host: str | None = Field(None, description="machine the run folder was made on")
    job: JobPart | None = None
    training: TrainingPart | None = None

    @classmethod
    def from_json(cls, data: Any) -> "RunStatus":
        """Parse status.json (also the flat files of earlier versions); ValueError if it is not one."""
        if not isinstance(data, dict):
            raise ValueError("it does not hold a JSON object")
        if "job" not in data and "training" not in data and "state" in data:
            data = _from_flat(data)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"field {'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None

    def merged(self, part: str, fields: dict, now: float) -> "RunStatus":
        """A copy with `fields` merged into `part` ('job' or 'training'); `changed` moves when the
        state does or a new attempt starts (`started`). Unknown fields and states are a ValueError
        (each part has one writer and its own keys)."""
        kind = JobPart if part == "job" else TrainingPart
        unknown = sorted(k for k in fields if k not in kind.model_fields or k == "changed")
        if unknown:
            raise ValueError(f"status field {unknown[0]!r} is not one of the {part} part's fields")
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"unknown run state {fields['state']!r}; one of {STATES}")
        current = getattr(self, part)
        if current is None and "state" not in fields:  # a first write without a state (a cancel
            # request on a foreground run) takes the run's state and does not decide it
            current = kind(state=self.state if self.state in STATES else "queued")
        data = current.model_dump() if current is not None else {}
        moved = current is None or any(key in fields and fields[key] != getattr(current, key)
                                       for key in ("state", "started"))
        data.update(fields)
        if moved:
            other = self.training if part == "job" else self.job
            data["changed"] = max(now, (other.changed + 1e-6) if other is not None else 0.0)
        return self.model_copy(update={part: kind.model_validate(data)})

    def _deciding(self) -> tuple[_Part | None, _Part | None]:
        """(the part that changed state last, the other one)."""
        job, training = self.job, self.training
        if job is None or training is None:
            return (job or training), None
        return (job, training) if job.changed > training.changed else (training, job)

    @property
    def state(self) -> str:
        deciding, _ = self._deciding()
        return deciding.state if deciding is not None else "queued"

    def training_is_current(self) -> bool:
        """The training part belongs to the job's current start (not to an earlier attempt)."""
        t, j = self.training, self.job
        if t is None:
            return False
        if j is None:
            return True
        since = j.started if j.started is not None else j.changed
        return (t.started or 0.0) >= since

    def view(self) -> dict:
        """The flat status pages, the CLI and the scheduler read (documented in docs/architecture.md):
        the job's fields, then what the trainer knows of the current attempt, then the deciding
        part's state, error and end. Fields never set are absent; `state` and `error` always there."""
        deciding, other = self._deciding()
        out: dict[str, Any] = {"created": self.created}
        if self.host is not None:
            out["host"] = self.host
        if self.job is not None:
            out.update(self.job.model_dump(exclude={"changed"}, exclude_none=True))
        training = self.training
        if training is not None:
            if self.training_is_current():  # what the trainer knows of this attempt (device, pid, ...)
                out.update(training.model_dump(exclude={"changed", "state", "error"}, exclude_none=True))
            else:  # an earlier attempt: its progress stays on show, not its process
                out.update(training.model_dump(include={"progress", "epoch", "environment"}, exclude_none=True))
        pid = training.pid if self.training_is_current() else (self.job.supervisor_pid if self.job else None)
        out.pop("pid", None)
        if pid is not None:
            out["pid"] = pid
        out["state"] = self.state
        error = getattr(deciding, "error", None)
        if error is None and other is not None and other.state == out["state"]:
            error = other.error
        out["error"] = error
        if deciding is not None and deciding.ended is not None:
            out["ended"] = deciding.ended
        return out


_JOB_KEYS = set(JobPart.model_fields) - {"changed"}
_TRAINING_KEYS = set(TrainingPart.model_fields) - {"changed"}


def _from_flat(data: dict) -> dict:
    """An earlier version's flat status.json as parts (the trainer's keys and the job's keys)."""
    stamp = float(data.get("ended") or data.get("started") or data.get("created") or 0.0)
    out: dict[str, Any] = {"created": data.get("created") or 0.0, "host": data.get("host")}
    if data.get("launch") or data.get("token"):
        job = {k: v for k, v in data.items() if k in _JOB_KEYS}
        out["job"] = {**job, "changed": stamp}
    if data.get("environment") or data.get("progress") is not None or not out.get("job"):
        training = {k: v for k, v in data.items() if k in _TRAINING_KEYS}
        out["training"] = {**training, "changed": stamp}
    return out

