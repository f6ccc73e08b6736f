"""The sweep worker: `python -m lego_core sweep worker SWEEP`. It asks Optuna for trials, starts each
as a normal run through the job scheduler (`jobs.launch`, its concurrency limit included), follows
the run's epochs (`trial.report` of the validation metric, `trial.should_prune`, then
`jobs.prune`), and tells Optuna how the run ended.

Nothing lives only in the worker: the study (trials, their run ids and owners) and the run folders
are the state. Any number of workers may serve one sweep, on one machine or several sharing a
database. A worker that starts (or resumes) first adopts the RUNNING trials of this machine whose
worker is gone: a finished run is told, a running one is followed again, an interrupted one is
resumed (`jobs.resume`), a trial whose run was never started gets it now; so no trial is repeated
or lost. SIGTERM/SIGINT pause the worker: its runs are cancelled with a checkpoint and continue on
the next resume. Workers' sessions, background workers and pausing them: `sessions`.
"""
from __future__ import annotations

import math
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from lego_core import jobs, runs
from lego_core.bricks.catalog import compatible
from lego_core.core import devices
from lego_core.core.errors import LegoError, RecipeError, RunError, one_line
from lego_core.core.fileio import locked
from lego_core.sweeps import study as studies
from lego_core.sweeps.optuna_adapter import reopen
from lego_core.sweeps.sessions import alive, elapsed, me
from lego_core.sweeps.spec import SweepError
from lego_core.sweeps.trials import run_attrs

AHEAD = 1  # runs queued beyond the free slots, so a slot never waits for the worker
MAX_SKIPS = 50  # proposals in a row that cannot run (bricks that do not fit, repeats): the space is spent
MAX_RESUMES = 2  # an interrupted run is resumed this many times, then its trial fails
MAX_FAILURES_IN_A_ROW = 5  # trials whose runs failed one after the other: the sweep stops (its spec is wrong)
HEARTBEAT = 5.0  # seconds between updates of the worker's session in the study
ADOPT_EVERY = 10.0


@dataclass
class _Follow:
    trial: Any  # optuna.trial.Trial
    run_id: str | None
    reported: set[int] = field(default_factory=set)
    resumes: int = 0
    paused: bool = False


class Worker:
    """One worker of a sweep (see the module doc). `run()` returns when nothing is left to start or
    follow, when the budget is spent, or when asked to stop."""

    def __init__(self, sweep_id: str, storage: str | None = None, root: Any = None, poll: float = 0.5,
                 echo: bool = True):
        import optuna

        self.optuna = optuna
        self.sweep_id, self.storage, self.root, self.poll, self.echo = sweep_id, storage, root, poll, echo
        plain, self.spec = studies.load(sweep_id, storage)
        self.session = sum(1 for key in plain.user_attrs if key.startswith(studies.WORKER_PREFIX))
        self.study, _ = studies.open_for_work(sweep_id, storage, self.session)
        self.me = me()
        self.key = f"{studies.WORKER_PREFIX}{self.me['host']}:{self.me['pid']}:{self.me['ticks']}"
        self.following: dict[int, _Follow] = {}
        self.stopping: str | None = None
        self.done = False
        self.skips = 0
        self.failures = 0  # trials failed in a row
        self.started = time.time()
        self._seen = self._adopted = 0.0
        try:
            device = jobs.resolve_device(self.spec.device)
        except RunError as exc:
            raise SweepError(f"sweep {sweep_id}: cannot launch trials here: {one_line(exc)}") from None
        self.grid = studies.grid_points(self.spec) if self.spec.sampler == "grid" else []
        slots = jobs.Devices.here(cuda=device.startswith("cuda")).limit(device, self.spec.max_concurrent)
        if device == "cuda":
            slots *= max(1, devices.cuda_count())
        self.in_flight = slots + AHEAD
        self.seeds = self.spec.seed_list

    # ---- the loop ----------------------------------------------------------------------------
    def run(self) -> dict:
        restore = self._signals()
        self._session(started=self.started, seen=self.started, ended=None)
        self.log(f"worker {self.me['host']}:{self.me['pid']} on sweep {self.sweep_id} "
                 f"({self.spec.sampler}, up to {self.spec.budget.trials} trials, {self.in_flight} in flight)")
        try:
            while True:
                self._heartbeat()
                if time.time() - self._adopted > ADOPT_EVERY:
                    self._adopt()
                jobs.refresh(self.root)
                for follow in list(self.following.values()):
                    self._follow(follow)
                if self.stopping:
                    self._pause()
                    break
                self._fill()
                if not self.following and self.done:
                    self._adopt()
                    if not self.following:
                        break
                time.sleep(self.poll)
        finally:
            self._session(seen=time.time(), ended=time.time(), stopped=self.stopping)
            restore()
        self.log(f"worker stops: {self.stopping or 'nothing left to start'}")
        return {"sweep": self.sweep_id, "stopped": self.stopping}

    def log(self, text: str) -> None:
        if self.echo:
            print(f"[sweep {time.strftime('%H:%M:%S')}] {text}", flush=True)

    def _signals(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

        def stop(signum: int, frame: Any) -> None:
            self.stopping = f"stopped by {signal.Signals(signum).name}; resume the sweep to continue"
        for sig in previous:
            signal.signal(sig, stop)
        return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()]

    def _session(self, **fields: Any) -> None:
        current = dict(self.study.user_attrs.get(self.key) or {**self.me})
        current.update(fields)
        self.study.set_user_attr(self.key, current)

    def _heartbeat(self) -> None:
        if time.time() - self._seen >= HEARTBEAT:
            self._seen = time.time()
            self._session(seen=self._seen)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One worker of this machine at a time adopts or asks (a sweep's trials stay distinct)."""
        with locked(studies.sweeps_dir() / f"{self.sweep_id}.lock"):
            yield

    # ---- adopting trials of workers that are gone ----------------------------------------------
    def _adopt(self) -> None:
        self._adopted = time.time()
        here = socket.gethostname()
        with self._lock():
            for frozen in self.study.get_trials(deepcopy=False, states=(self.optuna.trial.TrialState.RUNNING,)):
                attrs = frozen.user_attrs
                if frozen.number in self.following or attrs.get("host", here) != here or alive(attrs.get("owner")):
                    continue
                trial = reopen(self.study, frozen)
                trial.set_user_attr("owner", self.me)
                follow = _Follow(trial, attrs.get("run_id"), set(frozen.intermediate_values),
                                 int(attrs.get("resumes") or 0), bool(attrs.get("paused")))
                self.following[frozen.number] = follow
                self.log(f"trial {frozen.number}: adopted (its worker is gone)")
                if follow.run_id is None:
                    self._start_orphan(follow, attrs)

    def _start_orphan(self, follow: _Follow, attrs: dict) -> None:
        """A trial whose worker died before its run was recorded: its run (found by the recipe name)
        or a new one."""
        name = attrs.get("name")
        for run in runs.list(self.root) if name else []:
            try:
                if run.recipe().name == name:
                    follow.run_id = run.id
                    follow.trial.set_user_attr("run_id", run.id)
                    return
            except LegoError:
                continue
        config = studies.suggest(follow.trial, self.spec)
        seed = attrs.get("seed", self.seeds[0])
        self._prepare(follow.trial, config, seed, lead="lead" not in attrs and "retry_of" not in attrs)
        self._launch(follow, studies.recipe_for(self.spec, config, seed, self._name(follow.trial.number)))

    # ---- starting trials ----------------------------------------------------------------------
    def _fill(self) -> None:
        while len(self.following) < self.in_flight and not self.stopping:
            with self._lock():
                outcome = self._next()
            if outcome == "none":
                self.done = True
                return
            self.done = False

    def _next(self) -> str:
        """Ask for one trial and start its run: "started", "skipped" (it cannot run) or "none"."""
        TrialState = self.optuna.trial.TrialState
        trials = self.study.get_trials(deepcopy=False)
        if self.spec.budget.minutes and elapsed(self.study) >= 60 * self.spec.budget.minutes:
            return "none"
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        if not waiting:
            used = sum(1 for t in trials if "config" in t.user_attrs and "skipped" not in t.user_attrs)
            if used + len(self.seeds) > self.spec.budget.trials:
                return "none"
            if self.skips >= MAX_SKIPS and self.spec.sampler != "grid":  # a grid ends when its points are taken
                return "none"
            if self.spec.sampler == "grid":  # the next grid point nobody took, as a trial with its parameters
                taken = {t.user_attrs.get("config") for t in trials if "skipped" not in t.user_attrs}
                point = next((p for p in self.grid if studies.config_key(p) not in taken), None)
                if point is None:
                    return "none"
                self.study.enqueue_trial(point)
        trial = self.study.ask()
        attrs = trial.user_attrs
        lead = "seed" not in attrs
        seed = self.seeds[0] if lead else attrs["seed"]
        try:
            config = studies.suggest(trial, self.spec)
        except (ValueError, LegoError) as exc:
            return self._skip(trial, f"the sampler's proposal cannot be used: {one_line(exc)}")
        key = studies.config_key(config)
        reason = compatible(config["content"], config["behavior"], config["predictor"])
        if reason:
            return self._skip(trial, f"bricks do not fit: {reason}")
        for other in trials:
            a = other.user_attrs
            if other.number == trial.number or "skipped" in a or a.get("config") != key:
                continue
            if a.get("seed") == seed and other.state != TrialState.WAITING:
                return self._skip(trial, f"same configuration and seed as trial {other.number}")
            if not lead and other.state == TrialState.PRUNED:
                return self._skip(trial, f"trial {other.number}, a seed of this configuration, was pruned")
        try:  # bricks built for a stand-in dataset: a configuration that cannot run gets no run
            recipe = studies.recipe_for(self.spec, config, seed, self._name(trial.number)).validate()
        except RecipeError as exc:
            return self._skip(trial, one_line(exc))
        self._prepare(trial, config, seed, lead)
        follow = _Follow(trial, None)
        self.following[trial.number] = follow
        self._launch(follow, recipe)
        self.skips = 0
        return "started"

    def _name(self, number: int) -> str:
        return f"{self.sweep_id}-t{number}"

    def _prepare(self, trial: Any, config: dict, seed: int, lead: bool) -> None:
        """Record the trial's configuration, seed and owner; a configuration's first trial queues
        the same configuration for the other seeds (once: a repeat finds them queued)."""
        key = studies.config_key(config)
        for name, value in (("config", key), ("seed", int(seed)), ("owner", self.me),
                            ("host", socket.gethostname()), ("name", self._name(trial.number))):
            trial.set_user_attr(name, value)
        if not lead or trial.user_attrs.get("siblings"):
            return
        have = {t.user_attrs.get("seed") for t in self.study.get_trials(deepcopy=False)
                if t.user_attrs.get("config") == key and "skipped" not in t.user_attrs}
        for other in self.seeds:
            if other not in have:
                self.study.enqueue_trial(trial.params, user_attrs={"config": key, "seed": int(other),
                                                                   "lead": trial.number})
        trial.set_user_attr("siblings", True)

    def _launch(self, follow: _Follow, recipe: Any) -> None:
        try:
            run_id = jobs.launch(recipe, device=self.spec.device, root=self.root,
                                 max_concurrent=self.spec.max_concurrent, command=self.spec.command)
        except RecipeError as exc:
            self.following.pop(follow.trial.number, None)
            self._skip(follow.trial, one_line(exc))
            return
        except LegoError as exc:  # the machine cannot run trials (device, disk): stop, counting nothing
            self.following.pop(follow.trial.number, None)
            self._skip(follow.trial, f"could not launch: {one_line(exc)}")
            raise SweepError(f"sweep {self.sweep_id}: cannot launch trials here: {one_line(exc)}") from None
        follow.run_id = run_id
        follow.trial.set_user_attr("run_id", run_id)
        self.log(f"trial {follow.trial.number}: run {run_id} ({recipe.summary()}, seed {recipe.training.seed})")

    def _skip(self, trial: Any, reason: str) -> str:
        trial.set_user_attr("skipped", reason)
        self._tell(trial, state=self.optuna.trial.TrialState.FAIL)
        self.skips += 1
        return "skipped"

    # ---- following runs -------------------------------------------------------------------------
    def _follow(self, follow: _Follow) -> None:
        number = follow.trial.number
        try:
            run = runs.open(follow.run_id, self.root)
        except RunError:
            self._finish(follow, "fail", error=f"run {follow.run_id} is gone (its folder was deleted); asked again")
            self._again(follow)
            return
        state = run.state
        metric = self.spec.metric
        new: float | None = None
        for record in run.history("epochs"):
            step, value = record.get("epoch"), record.get(f"valid_{metric}")
            if isinstance(step, int) and step >= 1 and step not in follow.reported \
                    and isinstance(value, (int, float)) and math.isfinite(value):
                follow.trial.report(float(value), step)
                follow.reported.add(step)
                new = float(value)
        if state in runs.ACTIVE_STATES:
            if new is None or not follow.trial.should_prune():
                return
            epoch = max(follow.reported)
            note = f"pruned by sweep {self.sweep_id} after epoch {epoch} (valid {metric} {new:.4f})"
            state = jobs.prune(run.id, root=self.root, note=note).get("state")
            if state in runs.ACTIVE_STATES:
                return
        if state == "succeeded":
            self._finish(follow, "complete", run=run)
        elif state == "pruned":
            self._finish(follow, "pruned", run=run)
        elif state == "interrupted" or (state == "cancelled" and follow.paused):
            if follow.resumes >= MAX_RESUMES:
                self._finish(follow, "fail", run=run, error=f"its run was interrupted {follow.resumes + 1} times")
                return
            try:
                jobs.resume(run.id, root=self.root)
            except RunError:
                return  # still stopping: next time
            follow.resumes += int(state == "interrupted")
            follow.paused = False
            follow.trial.set_user_attr("resumes", follow.resumes)
            follow.trial.set_user_attr("paused", False)
            self.log(f"trial {number}: run {run.id} resumed")
        elif state == "cancelled":
            self._finish(follow, "fail", run=run, error="its run was cancelled by hand")
        else:
            self._finish(follow, "fail", run=run, error=run.status().get("error") or f"its run ended {state}")

    def _finish(self, follow: _Follow, how: str, run: Any = None, error: str | None = None) -> None:
        TrialState = self.optuna.trial.TrialState
        trial, value = follow.trial, None
        if run is not None:
            for name, attr in run_attrs(run).items():
                trial.set_user_attr(name, attr)
            value = ((run.metrics() if how == "complete" else {}).get("valid") or {}).get(self.spec.metric)
        if how == "complete" and not isinstance(value, (int, float)):
            how, error = "fail", f"run {follow.run_id} wrote no valid {self.spec.metric}"
        if error:
            trial.set_user_attr("error", error)
        if how == "complete":
            self._tell(trial, float(value))
        else:
            self._tell(trial, state=TrialState.PRUNED if how == "pruned" else TrialState.FAIL)
        self.following.pop(trial.number, None)
        shown = f"{self.spec.metric} {value:.4f}" if how == "complete" else (error or how)
        self.log(f"trial {trial.number}: {how} ({shown})")
        self.failures = self.failures + 1 if how == "fail" else 0
        if self.failures >= MAX_FAILURES_IN_A_ROW and not self.stopping:
            self.stopping = (f"{self.failures} trials failed in a row (the last: {shown}); fix the spec or the "
                             "data, then resume the sweep")

    def _tell(self, trial: Any, *args: Any, **kwargs: Any) -> None:
        self.study.tell(trial, *args, **kwargs)

    def _again(self, follow: _Follow) -> None:
        """Queue a lost trial's configuration and seed once more."""
        attrs = follow.trial.user_attrs
        self.study.enqueue_trial(follow.trial.params, user_attrs={"config": attrs.get("config"),
                                                                  "seed": attrs.get("seed"),
                                                                  "retry_of": follow.trial.number})

    def _pause(self) -> None:
        for follow in list(self.following.values()):
            follow.trial.set_user_attr("paused", True)
            if follow.run_id is None:
                continue
            try:
                jobs.cancel(follow.run_id, root=self.root)
            except RunError:
                pass  # it had ended: the next worker tells it
        self.following.clear()

