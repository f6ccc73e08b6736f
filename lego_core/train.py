"""The training loop: listwise softmax (or BCE) over 1 clicked + K negatives, Adam, early stopping
on a validation metric, exact resume from the last checkpoint, and DistributedDataParallel when
started by torchrun (gloo on CPU, nccl on GPUs; rank 0 evaluates and writes)."""
from __future__ import annotations

import io
import os
import pickle
import platform
import signal
import socket
import struct
import time
import warnings
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from lego_core import datasets, devices, evaluate as ev, fileio, metrics as metric_fns
from lego_core.batches import TrainingSamples
from lego_core.errors import LegoError, RunError
from lego_core.model import Legommender, build, to_tensor
from lego_core.recipe import Recipe


def pick_device(name: str) -> torch.device:
    """The torch device for a recipe's device name; an absent device is a RecipeError."""
    return devices.torch_device(name)


@dataclass
class Dist:
    """Where this process stands in a (possibly) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the process group torchrun set up (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = pick_device(device_name)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, device


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


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# What torch.load raises for a corrupt, truncated or foreign file (zip reader: RuntimeError; pickle
# stream: UnpicklingError/EOFError/ValueError/UnicodeDecodeError; weights_only refusals: UnpicklingError).
_UNREADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError,
               KeyError, IndexError, TypeError, AttributeError, ImportError, struct.error, OverflowError,
               MemoryError)
CHECKPOINT_KEYS = ("model", "optimizer", "scaler", "rng", "state")  # what save_checkpoint writes


def read_checkpoint(path, map_location="cpu", need: tuple[str, ...] = ("model",),
                    fix: str = "resume the run or train it again") -> dict:
    """The payload of a checkpoint file, loaded safely (weights_only=True: tensors and plain data
    only, never arbitrary objects). A file that cannot be read, is not a checkpoint or lacks the
    `need` keys is a one-line RunError naming the file and `fix`; PyTorch's own message is not
    repeated (it advises unsafe loading)."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise for a user
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except _UNREADABLE as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
            f"corrupt, truncated or not a PyTorch file: {type(exc).__name__}"
        raise RunError(f"checkpoint {path} is unreadable ({reason}){_then(fix)}") from None
    missing = [key for key in need if key not in payload] if isinstance(payload, dict) else list(need)
    if missing:
        raise RunError(f"checkpoint {path} is not a checkpoint of this trainer (no {', '.join(missing)})"
                       f"{_then(fix)}")
    return payload


def _then(fix: str) -> str:
    return f"; {fix}" if fix else ""


def check_weights(model: torch.nn.Module, weights, path, fix: str = "resume the run or train it again") -> None:
    """RunError naming the file unless `weights` has exactly the model's names and shapes (a
    checkpoint of another recipe); checked before loading, so a refused file leaves the model as it was."""
    expected = model.state_dict()
    if not isinstance(weights, dict):
        raise RunError(f"checkpoint {path} holds no model weights{_then(fix)}")
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    wrong = [k for k, v in expected.items() if k in weights and torch.is_tensor(v)
             and (not torch.is_tensor(weights[k]) or weights[k].shape != v.shape)]
    if missing or extra or wrong:
        first = (wrong or missing or extra)[0]
        detail = (f"'{first}' is {tuple(getattr(weights[first], 'shape', ()))}, the model's is "
                  f"{tuple(expected[first].shape)}" if wrong else f"'{first}' is {'missing' if missing else 'unknown'}")
        raise RunError(f"checkpoint {path} does not fit this recipe's model ({len(missing) + len(extra) + len(wrong)} "
                       f"mismatched weight(s); {detail}){_then(fix)}")


def load_weights(model: torch.nn.Module, weights, path, fix: str = "resume the run or train it again") -> None:
    """`check_weights`, then load them into `model`."""
    check_weights(model, weights, path, fix)
    model.load_state_dict(weights)


class Trainer:
    """Trains one recipe into one run directory (`lego_core.runs.Run`)."""

    def __init__(self, recipe: Recipe, run, progress: bool = True):
        self.recipe, self.run, self.progress = recipe.validate(), run, progress
        self.t = recipe.training
        self.dist, self.device = init_distributed(self.t.device)
        self.stop = _Stop()

    # ---- setup --------------------------------------------------------------------------
    def _log(self, message: str) -> None:
        if self.dist.main:
            with open(self.run.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%H:%M:%S')} {message}\n")
            if not self.progress:
                return
            tqdm.write(message)

    def _status(self, **fields) -> None:
        if self.dist.main:
            self.run.set_status(**fields)

    def setup(self) -> None:
        torch.manual_seed(self.t.seed)
        np.random.seed(self.t.seed % 2 ** 32)
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
        amp = self.t.amp and self.device.type == "cuda" and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp)
        self.steps_per_epoch = -(-len(self.samples) // (self.t.batch_size * self.dist.world))
        if self.t.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, self.t.max_steps_per_epoch)
        self.state = {"epoch": 0, "step": 0, "best": None, "best_epoch": -1, "bad_epochs": 0, "global_step": 0}

    # ---- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, name: str) -> None:
        """Write checkpoints/<name>.pt atomically (fileio.atomic_write_bytes: temp file, fsync, rename):
        a crash or a full disk mid-write leaves the previous checkpoint as it was."""
        if not self.dist.main:
            return
        payload = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                   "scaler": self.scaler.state_dict(), "rng": _rng_state(), "state": dict(self.state)}
        path = self.run.checkpoint_path(name)
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        try:
            fileio.atomic_write_bytes(path, buffer.getbuffer())  # a view: no second copy of the bytes
        except OSError as exc:
            raise RunError(f"could not write checkpoint {path} ({exc.strerror or exc}); free disk space "
                           "(or fix the folder's permissions) and resume the run: the previous checkpoint "
                           "is kept") from None

    def load_checkpoint(self, name: str, full: bool = True, fix: str = "resume the run or train it again") -> bool:
        """Load checkpoints/<name>.pt (weights only, or everything to resume with `full`); False when
        it does not exist. An unreadable or foreign file is a RunError naming it, and leaves the
        trainer as freshly set up."""
        path = self.run.checkpoint_path(name)
        if not path.exists():
            return False
        payload = read_checkpoint(path, self.device, CHECKPOINT_KEYS if full else ("model",), fix)
        if full and not (isinstance(payload["state"], dict) and set(self.state) <= set(payload["state"])):
            raise RunError(f"checkpoint {path} has no training state to resume from{_then(fix)}")
        load_weights(self.model, payload["model"], path, fix)
        if full:
            try:
                self.optimizer.load_state_dict(payload["optimizer"])
                self.scaler.load_state_dict(payload["scaler"])
                _set_rng_state(payload["rng"])
            except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
                self.setup()  # the weights went in already: start from a clean slate again
                raise RunError(f"checkpoint {path} does not fit this recipe's optimizer "
                               f"({type(exc).__name__}){_then(fix)}") from None
            self.state = dict(payload["state"])
        return True

    def _resume(self) -> None:
        """Continue from last.pt; if it is unreadable, say so and continue from best.pt (it holds the
        same full payload, as of the best epoch), else start over with a clean history."""
        last = self.run.checkpoint_path("last")
        try:
            loaded = self.load_checkpoint("last", fix="")
        except RunError as exc:
            loaded, note = False, str(exc)
            best = self.run.checkpoint_path("best")
            try:
                if self.load_checkpoint("best", fix=""):
                    # best.pt is written before the epoch counter moves on: continue after its epoch
                    self.state.update(epoch=max(self.state["epoch"], self.state["best_epoch"] + 1), step=0)
                    loaded, note = True, f"{note}; resuming from {best.name} (after epoch {self.state['epoch']})"
                    self.save_checkpoint("last")  # a good last.pt again, should this attempt crash too
                else:
                    note = f"{note}; there is no {best.name} either"
            except RunError:
                note = f"{note}; {best.name} is unusable too"
            if not loaded:
                note = f"{note}; starting from the beginning"
            self._log(note)
        else:
            self._log(f"resumed at epoch {self.state['epoch'] + 1}, step {self.state['step']}" if loaded
                      else "no checkpoint yet; starting from the beginning")
            if loaded and self.state["best_epoch"] >= 0:
                self._repair_unusable_best()
        self._drop_history_after_checkpoint()
        if self.dist.main:  # temp files of checkpoint writes cut short by a crash
            for stray in last.parent.glob("*.tmp"):
                stray.unlink(missing_ok=True)

    def _repair_unusable_best(self) -> None:
        """last.pt is fine but best.pt is not. When the best epoch is the one last.pt ends, last.pt holds
        the very same weights: write best.pt again from it. Otherwise forget the best epoch, so the next
        validation writes a new best.pt (with no epoch left, finish() says to train again)."""
        best = self.run.checkpoint_path("best")
        try:
            check_weights(self.model, read_checkpoint(best, "cpu", fix="")["model"], best, fix="")
        except RunError as exc:
            if self.state["step"] == 0 and self.state["best_epoch"] == self.state["epoch"] - 1:
                self.save_checkpoint("best")
                self._log(f"{exc}; rewritten from last.pt, which holds the same weights (epoch {self.state['epoch']})")
            else:
                self.state.update(best=None, best_epoch=-1, bad_epochs=0)
                self._log(f"{exc}; the best epoch so far is forgotten, the next validation writes a new {best.name}")

    def _drop_history_after_checkpoint(self) -> None:
        """Steps and epochs logged after the checkpoint will be replayed: keep the record unique."""
        if self.dist.main:
            steps = [r for r in self.run.history("steps") if r.get("global_step", 0) <= self.state["global_step"]]
            self.run.rewrite_history("steps", steps)
            epochs = [r for r in self.run.history("epochs") if r.get("epoch", 0) <= self.state["epoch"]]
            self.run.rewrite_history("epochs", epochs)

    # ---- loop ---------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float | None:
        """One epoch from self.state['step']; returns the mean loss, or None when cancelled."""
        order = self.samples.epoch_order(self.t.seed, epoch, self.dist.rank, self.dist.world)
        self.net.train()
        losses, start_step = [], self.state["step"]
        bar = tqdm(range(start_step, self.steps_per_epoch), desc=f"epoch {epoch + 1}/{self.t.epochs}",
                   disable=not (self.progress and self.dist.main), initial=start_step, total=self.steps_per_epoch)
        for step in bar:
            if self._stop_requested():
                self.state["step"] = step
                return None
            idx = order[step * self.t.batch_size:(step + 1) * self.t.batch_size]
            batch = self.samples.batch(idx, self.t.seed, epoch, step)
            with _autocast(self.device, self.t.amp):
                logits = self.net(to_tensor(batch.users, self.device), to_tensor(batch.history, self.device),
                                  to_tensor(batch.history_mask, self.device), to_tensor(batch.candidates, self.device))
            loss = loss_fn(logits, self.recipe.loss)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            value = float(loss.detach())
            if not np.isfinite(value):
                raise LegoError(f"training diverged (loss {value}) at epoch {epoch + 1}, step {step + 1}; "
                                "lower training.lr or training.lr_pretrained")
            losses.append(value)
            self.state["global_step"] += 1
            bar.set_postfix(loss=f"{value:.4f}")
            if self.dist.main and (step + 1) % self.t.log_every == 0:
                self.run.append("steps", {"epoch": epoch, "step": step + 1, "global_step": self.state["global_step"],
                                          "loss": float(np.mean(losses[-self.t.log_every:]))})
                done = (epoch + (step + 1) / self.steps_per_epoch) / self.t.epochs
                self._status(progress=round(done, 4), epoch=epoch)
        self.state["step"] = 0
        return float(np.mean(losses)) if losses else float("nan")

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

    def validate(self, epoch: int, loss: float) -> bool:
        """Evaluate on valid (rank 0), keep the best checkpoint; True when early stopping says stop."""
        stop = False
        if self.dist.main:
            result = ev.evaluate(self.model, self.dataset, "valid", batch_size=self.t.eval_batch_size,
                                 progress=self.progress)
            value = result[self.t.metric]
            better = self.state["best"] is None or (value > self.state["best"] if metric_fns.higher_is_better(
                self.t.metric) else value < self.state["best"])
            if better:
                self.state.update(best=value, best_epoch=epoch, bad_epochs=0)
                self.save_checkpoint("best")
            else:
                self.state["bad_epochs"] += 1
            stop = self.state["bad_epochs"] > self.t.patience
            self.run.append("epochs", {"epoch": epoch + 1, "loss": loss, **{f"valid_{k}": v for k, v in result.items()}})
            self._log(f"epoch {epoch + 1}: loss {loss:.4f}, valid {self.t.metric} {value:.4f}"
                      f"{' (best)' if better else ''}")
        self.state["epoch"] = epoch + 1
        self.save_checkpoint("last")
        return self._broadcast_stop(stop)

    def finish(self) -> dict:
        """Reload the best checkpoint, evaluate valid and test, save metrics and embedding tables."""
        if not self.dist.main:
            return {}
        self.load_checkpoint("best", full=False, fix="train the recipe again into a new --run-dir")
        result = {split: ev.evaluate(self.model, self.dataset, split, batch_size=self.t.eval_batch_size,
                                     progress=self.progress) for split in ("valid", "test")}
        pop = ev.popularity(self.dataset)
        result["popularity"] = {split: ev.evaluate_scores(self.dataset, split, pop) for split in ("valid", "test")}
        result.update(best_epoch=self.state["best_epoch"] + 1, parameters=self.model.parameter_count(),
                      trainable_parameters=self.model.parameter_count(trainable_only=True))
        self.save_embeddings()
        return result

    @torch.no_grad()
    def save_embeddings(self) -> None:
        self.model.eval()
        items = ev.item_table(self.model, self.t.eval_batch_size)
        users, ends = ev.test_user_states(self.dataset)
        table = ev.user_table(self.model, self.dataset, users, ends, items, self.t.eval_batch_size)
        self.run.save_embeddings(self.dataset.items["item_id"].astype(str).tolist(), items.cpu().numpy(),
                                 [str(u) for u in self.dataset.users], table.cpu().numpy())

    def fit(self, resume: bool = False) -> dict:
        started = time.time()
        self._status(state="running", pid=os.getpid(), host=socket.gethostname(), device=str(self.device),
                     nproc=self.dist.world, started=started, ended=None, error=None, progress=0.0,
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
                return {}
            if self.validate(epoch, loss):
                self._log(f"early stopping after epoch {epoch + 1}")
                break
        result = self.finish()
        result["train_seconds"] = round(time.time() - started, 2)
        if self.dist.main:
            self.run.write_metrics(result)
            self._status(state="succeeded", ended=time.time(), progress=1.0)
            self._log(f"done: test {', '.join(f'{k} {v:.4f}' for k, v in result['test'].items() if isinstance(v, float))}")
        return result


def run(recipe: Recipe, run, resume: bool = False, progress: bool = True) -> dict:
    """Train `recipe` into `run`; on failure record the error in the run's status and re-raise."""
    trainer = None
    try:
        trainer = Trainer(recipe, run, progress)
        return trainer.fit(resume)
    except BaseException as exc:
        if trainer is None or trainer.dist.main:
            message = str(exc) if isinstance(exc, LegoError) else f"{type(exc).__name__}: {exc}"
            run.set_status(state="failed" if not isinstance(exc, KeyboardInterrupt) else "cancelled",
                           ended=time.time(), error=message.splitlines()[0] if message else type(exc).__name__)
            with open(run.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"error: {message}\n")
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


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


def recipe_for(run, overrides: list[str], resume: bool) -> Recipe:
    """The recipe to train an existing run folder with: its own recipe.yaml, where overrides may only
    move it to another device (as the job launcher does), since one folder never mixes two recipes.
    Refuses a run another process is training, and a started run without `resume`."""
    from lego_core import jobs

    stored = run.recipe()
    recipe = stored.with_overrides(overrides) if overrides else stored
    before, after = stored.model_dump(mode="json"), recipe.model_dump(mode="json")
    before["training"].pop("device"), after["training"].pop("device")
    if before != after:
        raise RunError(f"{run.recipe_path} holds another recipe than the overrides ask for; a run folder keeps "
                       "one recipe: train the changed recipe into a new --run-dir")
    recipe.check_runnable()
    status = run.status_for_action()
    token = status.get("token")
    if token and os.environ.get(jobs.TOKEN_ENV) == token:
        return recipe  # the job launcher started this process for this run
    others = [pid for pid in jobs.live_pids(status) if pid != os.getpid()]
    if status.get("state") in ("queued", "running") and others:
        raise RunError(f"run {run.id} is being trained by process {others[0]}; cancel it first "
                       f"(`python -m lego_core jobs cancel {run.id}`)")
    if not resume and status.get("state") != "queued":
        raise RunError(f"run {run.id} is {status.get('state')}; continue it with `--resume`, or train into a "
                       "new --run-dir (a run folder keeps its checkpoints)")
    return recipe
