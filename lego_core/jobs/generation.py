"""Generating an item field with the local LLM in the background: a generation job.

A generation job is a job of the one scheduler (`scheduler`), in the same jobs folder as training
runs and sharing their slots, typed `job.kind: "generation"` in its status.json. Its folder holds
`generation.json` (the request: dataset, field, template, model, tokens), never a recipe, so
`runs.list` and the pages that show runs never see it. It runs `python -m lego_core augment
DATASET --field ... --progress JOB_DIR/progress.json` under the same supervisor; `progress.json`
holds {done, total} after each batch. Cancel is SIGTERM (`jobs.cancel`): every answer generated so
far is in the answer store of `lego_core.lm.generation`, so a resume, or a new launch of the same
request, generates only the rest, then saves the field's sidecar (`lego_core.data.generated`),
which `datasets.load` joins into the items.
"""
from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from lego_core import runs
from lego_core.core.errors import DataError, RunError
from lego_core.core.fileio import atomic_write_json
from lego_core.jobs.scheduler import job_folders, refresh
from lego_core.jobs.supervisor import tail

KIND = "generation"
REQUEST_FILE = "generation.json"
PROGRESS_FILE = "progress.json"
RESUMABLE = ("interrupted", "cancelled", "failed")


def root() -> Path:
    """The jobs folder generation jobs are queued in: the default runs folder (one scheduler)."""
    return runs.runs_root()


def launch_generation(dataset: str, field: str, template: str, max_tokens: int = 48, model: str | None = None,
                      options: dict | None = None, batch_size: int = 8, device: str = "auto",
                      loaded: Any = None) -> str:
    """Queue the generation of item field `field` of `dataset` (name or path, with its `options`)
    from `template` with at most `max_tokens` new tokens per item; it starts when a slot is free.
    Returns the job id. A bad field name or option is refused before anything is created
    (DataError); with the `loaded` Dataset at hand (the app has it) also a field that is one of
    its columns and a template naming fields it lacks."""
    from lego_core.data import datasets
    from lego_core.data.generated import FIELD_NAME, check_field
    from lego_core.data.text import template_fields
    from lego_core.jobs import resolve_device
    from lego_core.lm.generation import DEFAULT_MODEL

    options, model = dict(options or {}), model or DEFAULT_MODEL
    if not isinstance(field, str) or not FIELD_NAME.fullmatch(field):
        raise DataError(f"augment field name {field!r} is not allowed; use letters, digits and _ (e.g. description)")
    if not str(template or "").strip():
        raise DataError("augment needs a template, e.g. \"Describe {title} in one sentence.\"")
    if int(max_tokens) < 1 or int(batch_size) < 1:
        raise DataError("augment max_tokens and batch_size must be at least 1")
    datasets.check(dataset, options)
    if loaded is not None:
        check_field(loaded, field)
        missing = [f for f in template_fields(str(template)) if f not in loaded.items.columns]
        if missing:
            raise DataError(f"template names unknown item field(s) {missing}; available fields: "
                            f"{[c for c in loaded.items.columns if c != 'item_id']}")
    request = {"dataset": {"name": str(dataset), "options": options}, "field": field, "template": str(template),
               "model": str(model), "max_new_tokens": int(max_tokens), "batch_size": int(batch_size)}
    command = [sys.executable, "-m", "lego_core", "augment", str(dataset), "--field", field, "--template",
               str(template), "--model", str(model), "--max-new-tokens", str(int(max_tokens)), "--batch-size",
               str(int(batch_size)), "--options", json.dumps(options, sort_keys=True),
               "--progress", "{run_dir}/" + PROGRESS_FILE]
    resolved = resolve_device(device)
    launch = {"device": resolved, "nproc": 1, "nnodes": 1, "node_rank": 0, "rdzv_endpoint": None, "resume": False,
              "command": command}
    base = root()
    folder = base / f"{time.strftime('%Y%m%d-%H%M%S')}-{KIND}-{field}-{secrets.token_hex(2)}"
    folder.mkdir()
    atomic_write_json(folder / REQUEST_FILE, request)
    job = runs.Run(folder)
    job.set_job_status(state="queued", kind=KIND, device=resolved, nproc=1, launch=launch, queued_at=runs.now())
    refresh(base)
    return job.id


def _open(job_id: str | runs.Run) -> runs.Run:
    job = runs.open(job_id, root())
    if job.status().get("kind") != KIND:
        raise RunError(f"{job.id} is not a generation job; see `python -m lego_core jobs list` for runs")
    return job


def cancel_generation(job_id: str) -> dict:
    """Stop a job (SIGTERM; SIGKILL later by its supervisor); what it generated stays stored."""
    from lego_core.jobs import cancel

    return cancel(_open(job_id).id, root=root(), wait=False)


def resume_generation(job_id: str) -> str:
    """Queue a cancelled, interrupted or failed job again: it generates only the items still missing."""
    from lego_core.jobs import resume

    state = _open(job_id).status().get("state")
    if state not in RESUMABLE:
        raise RunError(f"generation job {job_id} is {state}; only {', '.join(RESUMABLE)} jobs can be resumed")
    return resume(job_id, root=root())


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a damaged file still lists the job by its id
        return {}
    return data if isinstance(data, dict) else {}


def generation_status(job: str | runs.Run) -> dict:
    """One job as the app shows it: id, field, dataset, template, state, error, done, total,
    fraction (0..1) and log tail."""
    job = _open(job)
    request, progress = _read_json(job.path / REQUEST_FILE), _read_json(job.path / PROGRESS_FILE)
    status = job.status()
    done, total = int(progress.get("done") or 0), int(progress.get("total") or 0)
    state = status.get("state", "unknown")
    if state == "succeeded" and total:
        done = total
    dataset = request.get("dataset") if isinstance(request.get("dataset"), dict) else {}
    return {"id": job.id, "field": request.get("field"), "dataset": dataset.get("name"),
            "options": dataset.get("options") or {}, "template": request.get("template"),
            "state": state, "error": status.get("error"), "done": done, "total": total,
            "fraction": done / total if total else (1.0 if state == "succeeded" else 0.0),
            "log": tail(job.log_path, 5)}


def generation_jobs(dataset: str | None = None) -> list[dict[str, Any]]:
    """Every generation job (newest first; only those of `dataset` when given), after the scheduler
    has noticed vanished processes and started queued jobs."""
    refresh(root())
    found = [generation_status(job) for job in reversed(job_folders(root())) if job.status().get("kind") == KIND]
    return [j for j in found if dataset is None or j["dataset"] == dataset]
