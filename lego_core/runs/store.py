"""The run store: one folder per training run under `cache/runs/<run_id>/`, the single source of truth.

A run folder holds `recipe.yaml`, `status.json`, `steps.jsonl` / `epochs.jsonl` (metric history),
`log.txt`, `checkpoints/{last,best}.pt`, `metrics.json` and `embeddings/` (item and user tables).
Files are written atomically (temp file + rename), so a reader (the app, `jobs list`) never sees a
half-written status or metrics file even when the trainer is killed; history files are JSON lines
appended and flushed one record at a time, and a torn last line is skipped on read.
Timestamps (`created`, `started`, `ended`) are unix seconds (float).
"""
from __future__ import annotations

import builtins
import json
import os
import re
import secrets
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


from lego_core.core.errors import RecipeError, RunError
from lego_core.core.fileio import (append_jsonl, atomic_write_json, atomic_write_text, json_default,
                              locked, read_jsonl)
from lego_core.core.paths import cache_dir, make_folder
from lego_core.runs.embedding_tables import EmbeddingTables
from lego_core.runs.status import ACTIVE_STATES, FINAL_STATES, STATES, RunStatus  # noqa: F401 (re-exported)

_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


_RECIPES: dict[str, tuple] = {}  # recipe.yaml path -> ((mtime_ns, size), Recipe): Run.recipe's parses


def now() -> float:
    """The timestamp format of status.json (unix seconds)."""
    return time.time()


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding all runs: `root`, else `cache/runs` (created on demand)."""
    if root is None:
        return cache_dir("runs")
    return make_folder(Path(root), "the runs folder")


def check_id(run_id: str) -> str:
    """`run_id` when it names a run inside the runs root (no '/', no leading '.'), else RunError."""
    if not isinstance(run_id, str) or not _ID.fullmatch(run_id):
        raise RunError(f"run id {run_id!r} is not valid: use letters, digits, '-', '_' and '.', starting with a "
                       "letter or digit (list runs with `python -m lego_core jobs list`)")
    return run_id


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


def _recipe_text(recipe: Any) -> tuple[str, dict]:
    """YAML text + mapping of a recipe (`recipe.read_yaml`); the store keeps any recipe mapping."""
    from lego_core.bricks.recipe import read_yaml

    source, text, data = read_yaml(recipe)
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping with content, behavior and predictor")
    return text, data


def _recipe_label(data: dict) -> str:
    """Short name for run ids: the recipe/preset name, else its three brick names."""
    name = data.get("name") or data.get("preset")
    if isinstance(name, str) and name and name != "custom":
        return _slug(name)
    bricks = [str((data.get(k) or {}).get("name", "")) for k in ("content", "behavior", "predictor")
              if isinstance(data.get(k), dict)]
    return _slug("-".join(b for b in bricks if b)) or "run"


class Run(EmbeddingTables):
    """One run folder. Cheap to construct; every accessor reads the files, so it never goes stale."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()
        self.id = self.path.name
        self._cache: dict[str, tuple[tuple, Any]] = {}

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # ---- recipe -------------------------------------------------------------------------
    @property
    def recipe_path(self) -> Path:
        return self.path / "recipe.yaml"

    def recipe_text(self) -> str:
        try:
            return self.recipe_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunError(f"run {self.id}: {self.recipe_path} is missing; the run folder is damaged") from None
        except UnicodeDecodeError:
            raise RunError(f"run {self.id}: {self.recipe_path} is not UTF-8 text; save it as UTF-8 YAML, or "
                           f"delete the run folder {self.path}") from None

    def recipe(self) -> Any:
        """The run's Recipe (structurally validated); a copy of the one parsed when the file last
        changed (pages list hundreds of runs on every rerun: parsing each YAML again took seconds)."""
        from lego_core.bricks.recipe import Recipe

        try:
            stat = self.recipe_path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        held = _RECIPES.get(str(self.recipe_path))
        if stamp is not None and held is not None and held[0] == stamp:
            return held[1].model_copy(deep=True)
        self.recipe_text()  # a missing file names the damaged run folder
        recipe = Recipe.from_yaml(self.recipe_path)
        if stamp is not None:
            _RECIPES[str(self.recipe_path)] = (stamp, recipe.model_copy(deep=True))
        return recipe

    # ---- status -------------------------------------------------------------------------
    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    def _read_status(self) -> tuple[RunStatus | None, str]:
        try:
            data = json.loads(self.status_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, f"{self.status_path} is missing"
        except (OSError, ValueError) as exc:
            return None, f"{self.status_path} is unreadable ({exc})"
        try:
            return RunStatus.from_json(data), ""
        except ValueError as exc:
            return None, f"{self.status_path} is not a run status ({exc})"

    def status_model(self) -> RunStatus | None:
        """The typed status (None when status.json is missing or damaged)."""
        return self._read_status()[0]

    def status(self) -> dict:
        """The flat view of status.json (`RunStatus.view`); a missing or damaged file gives state
        'unknown' with the reason."""
        model, reason = self._read_status()
        if model is None:
            return {"state": "unknown", "error": reason}
        return model.view()

    def status_for_action(self) -> dict:
        """The view for a decision (resume, cancel, train): a damaged file is a RunError naming it
        and the fix; a missing one reads as 'interrupted' (nothing runs it; its checkpoints stay)."""
        model, reason = self._read_status()
        if model is not None:
            return model.view()
        if self.status_path.exists():
            raise RunError(f"run {self.id}: {reason}; remove that file to resume the run from its checkpoints "
                           f"(`python -m lego_core jobs resume {self.id}`), or delete the run folder")
        return {"state": "interrupted", "error": f"{self.status_path} was missing"}

    @property
    def state(self) -> str:
        return str(self.status().get("state", "unknown"))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock on this run's status (read-modify-write by trainer, scheduler, cancel)."""
        with locked(self.path / ".status.lock"):
            yield

    @contextmanager
    def training_hold(self) -> Iterator[None]:
        """Held by every live process that trains into this folder (shared; the kernel drops it when
        the process dies, SIGKILL included): the proof of life that does not depend on status.json."""
        with locked(self.path / ".training.lock", shared=True):
            yield

    def in_training(self) -> bool:
        """Whether a live process holds `training_hold` on this folder right now."""
        try:
            with locked(self.path / ".training.lock", wait=False):
                return False
        except BlockingIOError:
            return True

    def _change(self, part: str, change: Callable[[dict], dict | None]) -> dict:
        """Read-modify-write of one part under the lock; `change(view)` gives that part's fields (or
        None to leave the file alone). A damaged file is replaced by a clean one, not merged."""
        with self.locked():
            model = self._read_status()[0] or RunStatus(created=now(), host=socket.gethostname())
            fields = change(model.view())
            if fields:
                model = model.merged(part, fields, now())
                atomic_write_json(self.status_path, model.model_dump(mode="json"))
        return model.view()

    def set_job_status(self, **fields: Any) -> dict:
        """Merge fields into the job part (lego_core.jobs only); returns the new view."""
        return self._change("job", lambda view: fields)

    def update_job_status(self, change: Callable[[dict], dict | None]) -> dict:
        """`change(view)` returns job fields to merge, or None (lego_core.jobs only)."""
        return self._change("job", change)

    def set_training_status(self, **fields: Any) -> dict:
        """Merge fields into the training part (the trainer only); returns the new view."""
        return self._change("training", lambda view: fields)

    def is_active(self) -> bool:
        """True while queued or running (as last recorded; jobs.refresh() corrects stale states)."""
        return self.state in ACTIVE_STATES

    # ---- history ------------------------------------------------------------------------
    def _history_path(self, kind: str) -> Path:
        if not _KIND.match(kind):
            raise ValueError(f"history kind {kind!r} must be a lowercase name such as 'steps' or 'epochs'")
        return self.path / f"{kind}.jsonl"

    def append(self, kind: str, record: dict) -> None:
        """Append one record to `<kind>.jsonl` ('steps' or 'epochs') and flush it."""
        append_jsonl(self._history_path(kind), record)

    def history(self, kind: str) -> list[dict]:
        """All records of `<kind>.jsonl`, oldest first; torn or corrupt lines are skipped."""
        return read_jsonl(self._history_path(kind))

    def rewrite_history(self, kind: str, records: Iterable[dict]) -> None:
        """Replace `<kind>.jsonl` atomically (e.g. a resumed run dropping epochs after its checkpoint)."""
        atomic_write_text(self._history_path(kind), "".join(json.dumps(r, default=json_default) + "\n"
                                                             for r in records))

    # ---- metrics, log, checkpoints --------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    def metrics(self) -> dict:
        """Final metrics ({} until the run has written them)."""
        try:
            data = json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise RunError(f"run {self.id}: {self.metrics_path} is unreadable ({exc})") from None
        return data if isinstance(data, dict) else {}

    def write_metrics(self, metrics: dict) -> None:
        atomic_write_json(self.metrics_path, metrics)

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    def checkpoint_path(self, name: str = "last") -> Path:
        """`checkpoints/<name>.pt` ('last' to resume from, 'best' for evaluation); folder created."""
        if not _KIND.match(name):
            raise ValueError(f"checkpoint name {name!r} must be a lowercase name such as 'last' or 'best'")
        folder = self.path / "checkpoints"
        folder.mkdir(exist_ok=True)
        return folder / f"{name}.pt"


# ---- module functions ------------------------------------------------------------------
def create(recipe: Any, root: str | os.PathLike | None = None, run_id: str | None = None,
           job: dict | None = None, created: float | None = None) -> Run:
    """Create a run folder with recipe.yaml and status.json (queued; `job` fields when the job
    launcher creates it)."""
    text, data = _recipe_text(recipe)
    base = runs_root(root)
    if run_id is not None:
        path = base / check_id(run_id)
        if path.exists() and not path.is_dir():
            raise RunError(f"{path} is a file, not a folder; choose another run folder")
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()  # an empty folder made beforehand holds nothing to lose
        try:
            path.mkdir()
        except FileExistsError:
            raise RunError(f"{path} already exists; a recipe trains into a new folder: choose another run "
                           f"folder, or continue that run with `python -m lego_core train --run-dir {path} "
                           "--resume`") from None
        except OSError as exc:
            raise RunError(f"cannot create the run folder {path} ({exc.strerror}); choose a writable folder") from None
    else:
        label = _recipe_label(data)
        while True:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = base / f"{stamp}-{label}-{secrets.token_hex(2)}"
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
    run = Run(path)
    atomic_write_text(run.recipe_path, text)
    status = RunStatus(created=now() if created is None else created, host=socket.gethostname())
    if job is not None:
        status = status.merged("job", {"state": "queued", **job}, now())
    atomic_write_json(run.status_path, status.model_dump(mode="json"))
    return run


def open(id_or_path: str | os.PathLike | Run, root: str | os.PathLike | None = None) -> Run:  # noqa: A001
    """A run by id (a folder name under `root`, default cache/runs) or by an explicit folder: a
    `Path`, or an absolute path string. A relative string with '/' or a leading '.' is refused, so
    an id typed by a user never reaches outside the runs root."""
    if isinstance(id_or_path, Run):
        return id_or_path
    text = os.fspath(id_or_path)
    if isinstance(id_or_path, os.PathLike) or os.path.isabs(text):
        path = Path(text)
    else:
        path = runs_root(root) / check_id(text)
    if not path.is_dir():
        raise RunError(f"run {text!r} not found (no folder {path}); list runs with "
                       "`python -m lego_core jobs list`")
    if not (path / "recipe.yaml").is_file() and not (path / "status.json").is_file():
        raise RunError(f"{path} is not a run folder (no recipe.yaml or status.json)")
    return Run(path)


def list(root: str | os.PathLike | None = None) -> builtins.list[Run]:  # noqa: A001
    """All runs under `root`, newest first (by creation time, then id)."""
    base = runs_root(root)
    found = []
    for path in base.iterdir():
        if path.is_dir() and not path.name.startswith(".") and (path / "recipe.yaml").exists():
            run = Run(path)
            created = run.status().get("created")
            if not isinstance(created, (int, float)):
                created = path.stat().st_mtime
            found.append((created, run.id, run))
    found.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [run for _, _, run in found]


def delete(run_id: str | os.PathLike | Run, root: str | os.PathLike | None = None) -> None:
    """Remove a run folder; refuses a running run (cancel it first), and a folder a live trainer
    holds whatever its status.json says (a damaged one reads as 'unknown')."""
    run = open(run_id, root)
    status = run.status()
    if status.get("state") == "running" or run.in_training():
        raise RunError(f"run {run.id} is running; cancel it first (`python -m lego_core jobs cancel {run.id}`)")
    shutil.rmtree(run.path)

