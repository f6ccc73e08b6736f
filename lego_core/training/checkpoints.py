"""Checkpoints: what a training checkpoint holds, the one safe reader, and where checkpoints go.

The trainer talks to a `Checkpointer` (save/load by name), so the same loop checkpoints into a run
folder (`RunCheckpointer`: atomic writes through `fileio.atomic_write_bytes`, so a kill or a full
disk mid-write leaves the previous file usable) or into memory for tests and benches
(`MemoryCheckpointer`). Files are only ever read with `weights_only=True`.
"""
from __future__ import annotations

import io
import pickle
import struct
import warnings
import zipfile
from typing import Protocol

import torch

from lego_core.core import fileio
from lego_core.core.errors import RunError


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
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
                    fix: str = "resume the run or train it again", label: str | None = None) -> dict:
    """The payload of a checkpoint file, loaded safely (weights_only=True: tensors and plain data
    only, never arbitrary objects). A file that cannot be read, is not a checkpoint or lacks the
    `need` keys is a one-line RunError naming the file and `fix`; PyTorch's own message is not
    repeated (it advises unsafe loading). `path` may be a file object; `label` names it then."""
    label = label or str(path)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise for a user
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except _UNREADABLE as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
            f"corrupt, truncated or not a PyTorch file: {type(exc).__name__}"
        raise RunError(f"checkpoint {label} is unreadable ({reason}){_then(fix)}") from None
    missing = [key for key in need if key not in payload] if isinstance(payload, dict) else list(need)
    if missing:
        raise RunError(f"checkpoint {label} is not a checkpoint of this trainer (no {', '.join(missing)})"
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


class Checkpointer(Protocol):
    """Where the trainer keeps its checkpoints, by name ('last' to resume, 'best' to export)."""

    def save(self, name: str, payload: dict) -> None: ...

    def load(self, name: str, map_location, need: tuple[str, ...], fix: str) -> dict | None:
        """The payload, None when there is none; a damaged one is a RunError naming it."""

    def where(self, name: str) -> str:
        """How messages name checkpoint `name` (a path, or memory)."""

    def clean(self) -> None:
        """Remove what writes cut short by a crash left behind."""


class RunCheckpointer:
    """Checkpoints as `checkpoints/<name>.pt` in a run folder."""

    def __init__(self, run):
        self.run = run

    def where(self, name: str) -> str:
        return str(self.run.checkpoint_path(name))

    def save(self, name: str, payload: dict) -> None:
        path = self.run.checkpoint_path(name)
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        try:
            fileio.atomic_write_bytes(path, buffer.getbuffer())  # a view: no second copy of the bytes
        except OSError as exc:
            raise RunError(f"could not write checkpoint {path} ({exc.strerror or exc}); free disk space "
                           "(or fix the folder's permissions) and resume the run: the previous checkpoint "
                           "is kept") from None

    def load(self, name: str, map_location="cpu", need: tuple[str, ...] = ("model",),
             fix: str = "resume the run or train it again") -> dict | None:
        path = self.run.checkpoint_path(name)
        return read_checkpoint(path, map_location, need, fix) if path.exists() else None

    def clean(self) -> None:
        for stray in self.run.checkpoint_path("last").parent.glob("*.tmp"):
            stray.unlink(missing_ok=True)


class MemoryCheckpointer:
    """Checkpoints kept as serialised bytes in memory (tests, benches): a saved payload is a copy."""

    def __init__(self):
        self.files: dict[str, bytes] = {}

    def where(self, name: str) -> str:
        return f"memory:{name}"

    def save(self, name: str, payload: dict) -> None:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        self.files[name] = buffer.getvalue()

    def load(self, name: str, map_location="cpu", need: tuple[str, ...] = ("model",),
             fix: str = "") -> dict | None:
        if name not in self.files:
            return None
        return read_checkpoint(io.BytesIO(self.files[name]), map_location, need, fix, label=self.where(name))

    def clean(self) -> None:
        pass
