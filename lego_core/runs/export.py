"""A serving bundle of a trained run (`lego export RUN -o DIR`), loadable without lego_core:

- `items.parquet`: item_id, vector (the run's item table: every item encoded once), title, category;
- `user_encoder.onnx`: history [B, H, D] float32 + mask [B, H] bool -> user [B, D] (or [B, K, D]);
- `predictor.onnx`: user, candidates [B, C, D] (+ history, mask for history-aware predictors) -> scores [B, C];
- `model.json`: recipe, metrics, dataset, created, shapes, and how closely onnxruntime matched torch;
- `recommend.py`: top-k for a history of item ids with numpy + pyarrow + onnxruntime only;
- `projector/`: TensorBoard embedding-projector files of the item table (tensors + metadata TSV with
  titles and categories): `tensorboard --logdir DIR/projector`.

H is the recipe's max_history (fixed); B and C are free. A brick that cannot be exported (an
operator ONNX lacks, a per-user table a new history has no row in) is named with the reason.
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lego_core.core.errors import LegoError, RunError
from lego_core.runs import recommend

FORMAT = "lego-serving-bundle/1"
TOLERANCE = 1e-5  # largest |onnxruntime - torch| accepted on the run's own test users
SCRIPT = Path(__file__).with_name("bundle_recommend.py")


class UserEncoder(nn.Module):
    """The behaviour brick as a function of a history alone (a new user has no id)."""

    def __init__(self, behavior: nn.Module):
        super().__init__()
        self.behavior = behavior

    def forward(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.behavior(history, mask, torch.zeros(history.shape[0], dtype=torch.long, device=history.device))


class Predictor(nn.Module):
    def __init__(self, model, needs_history: bool):
        super().__init__()
        self.predictor, self.needs_history = model.predictor, needs_history

    def forward(self, user, candidates, history=None, mask=None):
        if self.needs_history:
            return self.predictor(user, candidates, history, mask)
        return self.predictor(user, candidates)


def history_free(model, history: torch.Tensor, mask: torch.Tensor) -> tuple[nn.Module, list[str]]:
    """The behaviour brick for new histories, and notes. A brick whose output depends on the user id
    is usable only when that is a learned per-user vector it can do without (LSTUR's long-term
    state, masked to zeros for part of training: a new user starts from zeros); otherwise RunError."""
    behavior, name = model.behavior, model.recipe.behavior.name
    with torch.no_grad():
        other = torch.full((history.shape[0],), min(1, model.num_users - 1), dtype=torch.long)
        depends = not torch.equal(behavior(history, mask, other * 0), behavior(history, mask, other))
    if not depends:
        return behavior, []
    if isinstance(getattr(behavior, "users", None), nn.Embedding):
        free = copy.deepcopy(behavior)
        free.users = None
        return free, [f"behavior '{name}': its per-user long-term vectors are left out; a new history starts "
                      "from zeros, as training's user_dropout does for masked users"]
    raise RunError(f"behavior brick '{name}' cannot be exported: its user vector depends on the training user's "
                   "id, which a new history does not have")


def _onnx(module: nn.Module, args: tuple, path: Path, names: list[str], output: str, dynamic: dict, what: str) -> None:
    try:
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=17, input_names=names,
                          output_names=[output], dynamic_axes=dynamic)
    except Exception as exc:  # an operator the exporter cannot express, data-dependent control flow, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise RunError(f"{what} cannot be exported to ONNX: {type(exc).__name__}: {first}") from None


def _largest_gap(path: Path, feeds: dict, expected: torch.Tensor) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path))
    wanted = {i.name for i in session.get_inputs()}
    got = session.run(None, {k: v.numpy() for k, v in feeds.items() if k in wanted})[0]
    return float(np.max(np.abs(got - expected.numpy()))) if got.size else 0.0


def _metadata(dataset) -> tuple[list[str], list[str]]:
    """Each item's title (its first text field, else its id) and category ("" when none)."""
    items = dataset.items
    ids = items["item_id"].astype(str)
    text = next((f for f in dataset.text_fields if f in items.columns), None)
    titles = items[text].fillna("").astype(str) if text else ids
    category = dataset.category_field if dataset.category_field in items.columns else None
    categories = items[category].fillna("").astype(str) if category else ids.map(lambda _: "")
    clean = [" ".join(t.split())[:200] or i for t, i in zip(titles, ids)]  # one TSV cell each
    return clean, [" ".join(c.split()) for c in categories]


def projector(folder: Path, vectors: np.ndarray, ids: list[str], titles: list[str], categories: list[str]) -> Path:
    """TensorBoard projector files of an item table into `folder` (tensors.tsv, metadata.tsv,
    projector_config.pbtxt), written by TensorBoard's own writer."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(folder)) as writer:
        writer.add_embedding(torch.from_numpy(vectors), metadata=list(zip(ids, titles, categories)),
                             metadata_header=["item_id", "title", "category"], tag="items")
    return folder


def export(run, out: str | Path, sample_users: int = 64) -> dict:
    """Write the serving bundle of `run` into the new folder `out`; returns model.json's content."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LegoError(f"-o {out}: exists and is not an empty folder; choose a new one")
    found = recommend.scorer(run)
    model, dataset = found.model, found.dataset
    recipe, t = model.recipe, model.recipe.training
    items = found.items.float()
    rows = np.arange(min(sample_users, dataset.num_users))
    hist, mask = dataset.gather_histories(rows, found.test_ends[rows], t.max_history)
    history, mask_t = items[torch.from_numpy(hist)], torch.from_numpy(mask)
    behavior, notes = history_free(model, history, mask_t)
    encoder = UserEncoder(behavior).eval()
    scorer = Predictor(model, model.needs_history).eval()
    work = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with torch.no_grad():
            user = encoder(history, mask_t)
            candidates = items[: min(len(items), 32)].unsqueeze(0).expand(len(rows), -1, -1).contiguous()
            scores = scorer(user, candidates, history, mask_t) if model.needs_history else scorer(user, candidates)
        _onnx(encoder, (history, mask_t), work / "user_encoder.onnx", ["history", "mask"], "user",
              {"history": {0: "batch"}, "mask": {0: "batch"}, "user": {0: "batch"}},
              f"behavior brick '{recipe.behavior.name}'")
        names = ["user", "candidates"] + (["history", "mask"] if model.needs_history else [])
        inputs = (user, candidates) + ((history, mask_t) if model.needs_history else ())
        _onnx(scorer, inputs, work / "predictor.onnx", names, "scores",
              {name: {0: "batch"} for name in names} | {"candidates": {0: "batch", 1: "candidates"},
                                                         "scores": {0: "batch", 1: "candidates"}},
              f"predictor brick '{recipe.predictor.name}'")
        feeds = {"history": history, "mask": mask_t, "user": user, "candidates": candidates}
        gaps = {"user_encoder": _largest_gap(work / "user_encoder.onnx", feeds, user),
                "predictor": _largest_gap(work / "predictor.onnx", feeds, scores)}
        for part, gap in gaps.items():
            if gap > TOLERANCE:
                raise RunError(f"{part}.onnx differs from torch by {gap:.2e} (> {TOLERANCE:g}) on the run's own "
                               "users; this brick does not export faithfully")
        ids = dataset.items["item_id"].astype(str).tolist()
        titles, categories = _metadata(dataset)
        vectors = items.numpy().astype(np.float32)
        table = pa.table({"item_id": ids, "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(vectors.reshape(-1)), vectors.shape[1]), "title": titles, "category": categories})
        pq.write_table(table, work / "items.parquet")
        projector(work / "projector", vectors, ids, titles, categories)
        shutil.copyfile(SCRIPT, work / "recommend.py")
        info = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": run.id,
                "recipe": recipe.model_dump(mode="json"), "metrics": _metrics(run),
                "dataset": {"name": recipe.dataset.name, "options": recipe.dataset.options,
                            "items": len(ids), "users": dataset.num_users},
                "dim": int(vectors.shape[1]), "max_history": t.max_history,
                "user_shape": ["batch", *user.shape[1:]], "predictor_inputs": names,
                "onnx_max_abs_difference": gaps, "notes": notes,
                "files": {"items": "items.parquet", "user_encoder": "user_encoder.onnx",
                          "predictor": "predictor.onnx", "projector": "projector", "script": "recommend.py"}}
        (work / "model.json").write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
        if out.exists():
            out.rmdir()
        work.replace(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return info


def _metrics(run) -> dict:
    try:
        return run.metrics()
    except LegoError:
        return {}
