"""The training loop: listwise softmax (or BCE) over 1 clicked + K negatives, Adam, early stopping
on a validation metric, exact resume from the last checkpoint, and DistributedDataParallel when
started by torchrun (gloo on CPU, nccl on GPUs; every rank evaluates its share, rank 0 gets the
metrics and writes)."""
from __future__ import annotations

import os
import platform
import signal
import socket
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from lego_core.data import datasets
from lego_core.evaluation import evaluate as ev
from lego_core.training import tables
from lego_core.evaluation import popularity
from lego_core.training import history_cache
from lego_core.evaluation import metrics as metric_fns
from lego_core.data.batches import TrainingSamples
from lego_core.training.checkpoints import (CHECKPOINT_KEYS, Checkpointer, RunCheckpointer, check_weights, load_weights,
                                   rng_state, set_rng_state)
from lego_core.core.errors import LegoError, RunError
from lego_core.core.process import start_ticks
from lego_core.training import loggers
from lego_core.training.logs import TrainingLog
from lego_core.bricks.model import Legommender, build, to_tensor
from lego_core.bricks.recipe import Recipe
from lego_core.training.distributed import Dist, broadcast_weights, init_distributed, leave_process_group  # noqa: F401
from lego_core.core.progress import redraw_seconds


class _Stop:
    """Turns SIGTERM into a flag the loop checks between steps, so cancel can checkpoint."""

    def __init__(self):
        self.requested = False
        try:
            signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread (e.g. inside a test runner thread)
            pass

    def _handle(self, *_):
        self.requested = True


def _autocast(device: torch.device, enabled: bool):
    if not (enabled and device.type == "cuda"):
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def loss_fn(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Column 0 holds the clicked item: softmax CE over the list, or BCE on every cell."""
    logits = logits.float()
    if kind == "softmax":
        return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    return F.binary_cross_entropy_with_logits(logits, labels)


class Trainer:
    """Trains one recipe. Where it reports and checkpoints is up to its `log` and `checkpoints`
    (a run folder in `run()`, memory in tests and benches); it never touches files itself."""

    def __init__(self, recipe: Recipe, log: TrainingLog, checkpoints: Checkpointer, progress: bool = True,
                 dataset=None):
        self.recipe, self.log, self.checkpoints, self.progress = recipe.validate(), log, checkpoints, progress
        self.t = recipe.training
        self.dataset = dataset
        self.dist, self.device = init_distributed(self.t.device)
        self.stop = _Stop()

    # ---- setup --------------------------------------------------------------------------
    def _log(self, message: str) -> None:
        if self.dist.main:
            self.log.message(message)

    def _status(self, **fields) -> None:
        if self.dist.main:
            self.log.status(**fields)

    def setup(self) -> None:
        if self.device.type == "cpu":  # two runs of one recipe and seed give identical metrics: with 2+
            # threads some CPU kernels accumulate in a varying order (1e-7 AUC apart); the
            # deterministic ones do not (docs/reliability.md)
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(self.t.seed)
        np.random.seed(self.t.seed % 2 ** 32)
        if self.dataset is None:
            self.dataset = datasets.load(self.recipe.dataset.name, **self.recipe.dataset.options)
        self.samples = TrainingSamples(self.dataset, self.t.negatives, self.t.max_history)
        self.model: Legommender = build(self.recipe, self.dataset, self.device).to(self.device)
        pretrained, other = self.model.parameter_groups()
        groups = [{"params": other, "lr": self.t.lr}]
        if pretrained:
            groups.append({"params": pretrained, "lr": self.t.lr_pretrained})
        self.optimizer = torch.optim.Adam(groups, weight_decay=self.t.weight_decay)
        self.net = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids,
                                                                 find_unused_parameters=True)
        self.history = None
        if history_cache.enabled(self.recipe):
            self.history = history_cache.HistoryCache(self.t.history_max_age)
        amp = self.t.amp and self.device.type == "cuda" and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp)
        self.steps_per_epoch = -(-len(self.samples) // (self.t.batch_size * self.dist.world))
        if self.t.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, self.t.max_steps_per_epoch)
        self.state = {"epoch": 0, "step": 0, "best": None, "best_epoch": -1, "bad_epochs": 0, "global_step": 0,
                      "loss_sum": 0.0, "loss_steps": 0}  # the epoch's losses so far: a resumed epoch's mean is whole

    # ---- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, name: str) -> None:
        """Everything an exact resume needs: weights, optimizer, scaler, RNG and loop state."""
        if self.dist.main:
            self.checkpoints.save(name, {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                                         "scaler": self.scaler.state_dict(), "rng": rng_state(),
                                         "state": dict(self.state)})

    def load_checkpoint(self, name: str, full: bool = True, fix: str = "resume the run or train it again") -> bool:
        """Load checkpoint `name` (weights only, or everything to resume with `full`); False when it
        does not exist. An unreadable or foreign one is a RunError naming it, and leaves the trainer
        as freshly set up."""
        where = self.checkpoints.where(name)
        payload = self.checkpoints.load(name, self.device, CHECKPOINT_KEYS if full else ("model",), fix)
        if payload is None:
            return False
        then = f"; {fix}" if fix else ""
        if full and not (isinstance(payload["state"], dict) and set(self.state) <= set(payload["state"])):
            raise RunError(f"checkpoint {where} has no training state to resume from{then}")
        load_weights(self.model, payload["model"], where, fix)
        if full:
            try:
                self.optimizer.load_state_dict(payload["optimizer"])
                self.scaler.load_state_dict(payload["scaler"])
                set_rng_state(payload["rng"])
            except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
                self.setup()  # the weights went in already: start from a clean slate again
                raise RunError(f"checkpoint {where} does not fit this recipe's optimizer "
                               f"({type(exc).__name__}){then}") from None
            self.state = dict(payload["state"])
        return True

    def _resume(self) -> None:
        """Continue from last; if it is unreadable, say so and continue from best (it holds the same
        full payload, as of the best epoch), else start over with a clean history."""
        try:
            loaded = self.load_checkpoint("last", fix="")
        except RunError as exc:
            loaded, note = False, str(exc)
            best = os.path.basename(self.checkpoints.where("best"))
            try:
                if self.load_checkpoint("best", fix=""):
                    # best is written before the epoch counter moves on: continue after its epoch
                    self.state.update(epoch=max(self.state["epoch"], self.state["best_epoch"] + 1), step=0)
                    loaded, note = True, f"{note}; resuming from {best} (after epoch {self.state['epoch']})"
                    self.save_checkpoint("last")  # a good last again, should this attempt crash too
                else:
                    note = f"{note}; there is no {best} either"
            except RunError:
                note = f"{note}; {best} is unusable too"
            if not loaded:
                note = f"{note}; starting from the beginning"
            self._log(note)
        else:
            self._log(f"resumed at epoch {self.state['epoch'] + 1}, step {self.state['step']}" if loaded
                      else "no checkpoint yet; starting from the beginning")
            if loaded and self.state["best_epoch"] >= 0:
                self._repair_unusable_best()
        if self.dist.main:  # records after the checkpoint replay; temp files of cut-short writes go
            self.log.rewind(self.state["global_step"], self.state["epoch"])
            self.checkpoints.clean()

    def _repair_unusable_best(self) -> None:
        """last is fine but best is not. When the best epoch is the one last ends, last holds the very
        same weights: write best again from it. Otherwise forget the best epoch, so the next
        validation writes a new best (with no epoch left, finish() says to train again)."""
        where = self.checkpoints.where("best")
        try:
            payload = self.checkpoints.load("best", "cpu", ("model",), "")
            if payload is None:
                raise RunError(f"checkpoint {where} is missing")
            check_weights(self.model, payload["model"], where, fix="")
        except RunError as exc:
            if self.state["step"] == 0 and self.state["best_epoch"] == self.state["epoch"] - 1:
                self.save_checkpoint("best")
                self._log(f"{exc}; rewritten from last.pt, which holds the same weights (epoch {self.state['epoch']})")
            else:
                self.state.update(best=None, best_epoch=-1, bad_epochs=0)
                self._log(f"{exc}; the best epoch so far is forgotten, the next validation writes a new "
                          f"{os.path.basename(where)}")

    # ---- loop ---------------------------------------------------------------------------
    def train_step(self, batch) -> float:
        """One optimizer step on a batch of `TrainingSamples`; returns the loss."""
        if self.history is not None:
            self.history.begin_step()
        with _autocast(self.device, self.t.amp):
            logits = self.net(to_tensor(batch.users, self.device), to_tensor(batch.history, self.device),
                              to_tensor(batch.history_mask, self.device), to_tensor(batch.candidates, self.device),
                              history_cache=self.history)
        loss = loss_fn(logits, self.recipe.loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def train_epoch(self, epoch: int) -> float | None:
        """One epoch from self.state['step']; returns the mean loss over all its steps (those before a
        resume included: their sum travels in the checkpoint's state), or None when cancelled."""
        order = self.samples.epoch_order(self.t.seed, epoch, self.dist.rank, self.dist.world)
        if self.history is not None:  # every row expires at each epoch start (as after a resume)
            self.history.invalidate()
        self.net.train()
        losses, start_step = [], self.state["step"]
        if start_step == 0:
            self.state.update(loss_sum=0.0, loss_steps=0)
        bar = tqdm(range(start_step, self.steps_per_epoch), desc=f"epoch {epoch + 1}/{self.t.epochs}",
                   mininterval=redraw_seconds(), disable=not (self.progress and self.dist.main),
                   initial=start_step, total=self.steps_per_epoch)
        for step in bar:
            if self._stop_requested():
                self.state["step"] = step
                return None
            idx = order[step * self.t.batch_size:(step + 1) * self.t.batch_size]
            value = self.train_step(self.samples.batch(idx, self.t.seed, epoch, step))
            if not np.isfinite(value):
                raise LegoError(f"training diverged (loss {value}) at epoch {epoch + 1}, step {step + 1}; "
                                "lower training.lr or training.lr_pretrained")
            losses.append(value)
            self.state["global_step"] += 1
            self.state["loss_sum"] = self.state.get("loss_sum", 0.0) + value  # a checkpoint from before
            self.state["loss_steps"] = self.state.get("loss_steps", 0) + 1  # these keys: its steps are lost
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)  # drawn at the next redraw, not now
            if self.dist.main and (step + 1) % self.t.log_every == 0:
                self.log.step({"epoch": epoch, "step": step + 1, "global_step": self.state["global_step"],
                               "loss": float(np.mean(losses[-self.t.log_every:]))})
                done = (epoch + (step + 1) / self.steps_per_epoch) / self.t.epochs
                self._status(progress=round(done, 4), epoch=epoch)
        self.state["step"] = 0
        steps = self.state.get("loss_steps", 0)
        return self.state["loss_sum"] / steps if steps else float("nan")

    def _stop_requested(self) -> bool:
        flag = self.stop.requested
        if self.dist.enabled:  # every rank must stop at the same step
            t = torch.tensor([int(flag)], device=self.device)
            dist.all_reduce(t)
            flag = bool(t.item())
        return flag

    def _broadcast_stop(self, stop: bool) -> bool:
        if not self.dist.enabled:
            return stop
        t = torch.tensor([int(stop)], device=self.device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def _evaluate(self, split: str, parts: bool = False) -> dict | None:
        """Metrics of self.model on a split, the work shared by every rank (rank 0 gets them, the
        others None: every rank must call it)."""
        return ev.evaluate(self.model, self.dataset, split, batch_size=self.t.eval_batch_size, parts=parts,
                           progress=self.progress and self.dist.main, sharded=self.dist.enabled)

    def validate(self, epoch: int, loss: float) -> bool:
        """Evaluate on valid (every rank its share), keep the best checkpoint (rank 0); True when
        early stopping says stop."""
        stop = False
        result = self._evaluate("valid")
        if self.dist.main:
            value = result[self.t.metric]
            better = self.state["best"] is None or (value > self.state["best"] if metric_fns.higher_is_better(
                self.t.metric) else value < self.state["best"])
            if better:
                self.state.update(best=value, best_epoch=epoch, bad_epochs=0)
                self.save_checkpoint("best")
            else:
                self.state["bad_epochs"] += 1
            stop = self.state["bad_epochs"] > self.t.patience
            self.log.epoch({"epoch": epoch + 1, "loss": loss, **{f"valid_{k}": v for k, v in result.items()}})
            self._log(f"epoch {epoch + 1}: loss {loss:.4f}, valid {self.t.metric} {value:.4f}"
                      f"{' (best)' if better else ''}")
        self.state["epoch"] = epoch + 1
        self.save_checkpoint("last")
        return self._broadcast_stop(stop)

    def finish(self) -> dict:
        """Reload the best weights and evaluate valid and test (every rank its share; the result on
        rank 0, {} elsewhere)."""
        if self.dist.main:
            self.load_checkpoint("best", full=False, fix="train the recipe again into a new --run-dir")
        if self.dist.enabled:
            broadcast_weights(self.model)
        valid, test = self._evaluate("valid"), self._evaluate("test", parts=True)
        if not self.dist.main:
            return {}
        result = {"valid": valid, **ev.split_parts("test", test)}
        result["popularity"] = popularity.floor(self.dataset)
        result.update(best_epoch=self.state["best_epoch"] + 1, parameters=self.model.parameter_count(),
                      trainable_parameters=self.model.parameter_count(trainable_only=True))
        return result

    def fit(self, resume: bool = False) -> dict | None:
        """Train to the end (or early stop) and evaluate the best weights; None when cancelled."""
        self._status(state="running", pid=os.getpid(), start_ticks=start_ticks(os.getpid()),
                     host=socket.gethostname(), device=str(self.device),
                     nproc=self.dist.world, started=time.time(), ended=None, error=None, progress=0.0,
                     environment=environment())
        self.setup()
        if resume:
            self._resume()
        self._log(f"training {self.recipe.summary()} on {self.device} ({self.dist.world} process(es)); "
                  f"{len(self.samples)} samples, {self.steps_per_epoch} steps/epoch, "
                  f"{self.model.parameter_count():,} parameters")
        # a run that stopped early and was resumed (to rewrite its exports) only finishes
        first = self.t.epochs if self.state["bad_epochs"] > self.t.patience else self.state["epoch"]
        for epoch in range(first, self.t.epochs):
            if self.state["step"] == 0:  # a fresh epoch starts from a known RNG state (exact resume)
                torch.manual_seed(self.t.seed * 1000 + epoch + self.dist.rank)
            loss = self.train_epoch(epoch)
            if loss is None:  # cancelled: keep a checkpoint to resume from
                self.save_checkpoint("last")
                self._status(state="cancelled", ended=time.time())
                self._log("cancelled; checkpoint saved")
                return None
            if self.validate(epoch, loss):
                self._log(f"early stopping after epoch {epoch + 1}")
                break
        return self.finish()


def run(recipe: Recipe, run, resume: bool = False, progress: bool = True) -> dict:
    """Train `recipe` into the run folder `run`: the loop with its loggers (`loggers.for_run`: the RunLog
    and the recipe's trackers) and a RunCheckpointer, then
    the exports and metrics.json (rank 0). On failure the error goes into the run's status, re-raised.
    The process holds the folder's training lock throughout, so nothing deletes it under a live trainer."""
    with run.training_hold():
        return _train_into(recipe, run, resume, progress)


def _train_into(recipe: Recipe, run, resume: bool, progress: bool) -> dict:
    trainer = None
    started = time.time()
    try:
        trainer = Trainer(recipe, loggers.for_run(recipe, run, echo=progress), RunCheckpointer(run), progress)
        result = trainer.fit(resume)
        if result is None or not trainer.dist.main:
            return result or {}
        tables.save_tables(run, trainer.model, trainer.dataset, trainer.t.eval_batch_size)
        result["train_seconds"] = round(time.time() - started, 2)
        trainer.log.result(result)  # metrics.json, and the final metrics of every tracker
        trainer.log.status(state="succeeded", ended=time.time(), progress=1.0)
        trainer.log.message(f"done: test {', '.join(f'{k} {v:.4f}' for k, v in result['test'].items() if isinstance(v, float))}")
        return result
    except BaseException as exc:
        if trainer is None or trainer.dist.main:
            message = str(exc) if isinstance(exc, LegoError) else f"{type(exc).__name__}: {exc}"
            run.set_training_status(state="failed" if not isinstance(exc, KeyboardInterrupt) else "cancelled",
                                    ended=time.time(), error=message.splitlines()[0] if message else type(exc).__name__)
            with open(run.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"error: {message}\n")
        raise
    finally:
        if trainer is not None and hasattr(trainer, "model"):  # setup() may have failed before the model
            trainer.net = trainer.model  # see leave_process_group
        leave_process_group()


def environment() -> dict:
    """Package versions and machine, recorded with every run (versions from package metadata:
    importing transformers only to read its version cost every run 0.6 s)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        transformers = version("transformers")
    except PackageNotFoundError:
        transformers = None
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers, "numpy": np.__version__, "host": socket.gethostname(),
            "cpus": os.cpu_count(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
