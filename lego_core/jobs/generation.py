"""Generating an item field with the local LLM in the background: an augment job.

An augment job is a run folder of its own root, `cache_dir("augment_jobs")` (training runs never
list it), started by the same launcher and supervisor as training runs with a `launch.command` of
`python -m lego_core augment DATASET --field ... --progress RUN_DIR/progress.json`. Its
`recipe.yaml` holds the job's request (`kind: augment`, dataset, field, template, model, tokens);
`progress.json` holds {done, total} after each batch. Cancel is SIGTERM (`jobs.cancel`): every
answer generated so far is in the answer store of `lego_core.lm.augment`, so a resume, or a new
launch of the same request, generates only the rest, then saves the field's sidecar
(`lego_core.data.generated`), which `datasets.load` joins into the items.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lego_core import runs
from lego_core.core.errors import DataError, LegoError, RunError
from lego_core.jobs.scheduler import refresh
from lego_core.jobs.supervisor import _tail
from lego_core.core.paths import cache_dir

KIND = "augment"
PROGRESS_FILE = "progress.json"
RESUMABLE = ("interrupted", "cancelled", "failed")


def root() -> Path:
    """The folder holding augment jobs (one run folder each)."""
    return cache_dir("augment_jobs")


def launch_augment(dataset: str, field: str, template: str, max_tokens: int = 48, model: str | None = None,
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
    from lego_core.jobs import _resolve_device
    from lego_core.lm.augment import DEFAULT_MODEL

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
    request = {"name": f"{KIND}-{field}", "kind": KIND, "dataset": {"name": str(dataset), "options": options},
               "field": field, "template": str(template), "model": str(model), "max_new_tokens": int(max_tokens),
               "batch_size": int(batch_size)}
    command = [sys.executable, "-m", "lego_core", KIND, str(dataset), "--field", field, "--template", str(template),
               "--model", str(model), "--max-new-tokens", str(int(max_tokens)), "--batch-size", str(int(batch_size)),
               "--options", json.dumps(options, sort_keys=True), "--progress", "{run_dir}/" + PROGRESS_FILE]
    resolved = _resolve_device(device)
    launch = {"device": resolved, "nproc": 1, "nnodes": 1, "node_rank": 0, "rdzv_endpoint": None, "resume": False,
              "command": command}
    job = runs.create(request, root=root(), job={"device": resolved, "nproc": 1, "launch": launch,
                                                 "queued_at": runs.now()})
    refresh(root())
    return job.id


def cancel_augment(job_id: str) -> dict:
    """Stop a job (SIGTERM; SIGKILL later by its supervisor); what it generated stays stored."""
    from lego_core.jobs import cancel

    return cancel(job_id, root=root(), wait=False)


def resume_augment(job_id: str) -> str:
    """Queue a cancelled, interrupted or failed job again: it generates only the items still missing."""
    from lego_core.jobs import resume

    state = runs.open(job_id, root()).status().get("state")
    if state not in RESUMABLE:
        raise RunError(f"augment job {job_id} is {state}; only {', '.join(RESUMABLE)} jobs can be resumed")
    return resume(job_id, root=root())


def _progress(job: runs.Run) -> dict:
    try:
        data = json.loads((job.path / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def augment_status(job: str | runs.Run) -> dict:
    """One job as the app shows it: id, field, dataset, template, state, error, done, total,
    fraction (0..1) and log tail."""
    from lego_core.bricks.recipe import read_yaml

    job = runs.open(job, root())
    try:
        request = read_yaml(job.recipe_path)[2]
    except LegoError:  # a damaged request still lists the job by its id
        request = None
    request = request if isinstance(request, dict) else {}
    status, progress = job.status(), _progress(job)
    done, total = int(progress.get("done") or 0), int(progress.get("total") or 0)
    state = status.get("state", "unknown")
    if state == "succeeded" and total:
        done = total
    return {"id": job.id, "field": request.get("field"), "dataset": (request.get("dataset") or {}).get("name"),
            "options": (request.get("dataset") or {}).get("options") or {}, "template": request.get("template"),
            "state": state, "error": status.get("error"), "done": done, "total": total,
            "fraction": done / total if total else (1.0 if state == "succeeded" else 0.0),
            "log": _tail(job.log_path, 5)}


def augment_jobs(dataset: str | None = None) -> list[dict[str, Any]]:
    """Every augment job (newest first; only those of `dataset` when given), after the scheduler
    has noticed vanished processes and started queued jobs."""
    refresh(root())
    found = [augment_status(job) for job in runs.list(root())]
    return [j for j in found if dataset is None or j["dataset"] == dataset]
