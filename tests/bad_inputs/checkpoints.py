"""Damaged checkpoints: `evaluate` of a run whose best.pt is garbage, truncated, empty, of another
recipe or not a checkpoint at all (one line naming best.pt, exit 2), and `train --resume` of a run
whose last.pt (or both checkpoints) cannot be used (it recovers: from best.pt, else from scratch).

One tiny run (a single 2-step epoch) is trained once per test session into a template folder;
each case copies it (shutil.copytree) and damages its copy, so a case takes a fraction of a second.
"""
from __future__ import annotations

import atexit
import io
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path

from lego_core.core.errors import RunError
from tests.bad_inputs import Case, cli

RECIPE = """\
name: ckpt
dataset: {name: synthetic, options: {n_items: 60, n_users: 30, n_topics: 3, n_impressions: 30, seed: 1}}
content: {name: attention}
behavior: {name: attention}
predictor: {name: dot}
training: {epochs: 1, dim: 8, max_steps_per_epoch: 2, batch_size: 8, max_history: 6, max_length: 6,
           glove: false, log_every: 1, eval_batch_size: 64, device: cpu}
"""
_TEMPLATE: dict = {}


def _template() -> Path:
    """The trained template run folder (trained on first use, kept for the session)."""
    if "path" not in _TEMPLATE:
        from lego_core import runs
        from lego_core.training import train
        from lego_core.bricks.recipe import Recipe

        recipe = Recipe.from_yaml(RECIPE)
        root = tempfile.mkdtemp(prefix="lego-ckpt-template-")
        atexit.register(shutil.rmtree, root, True)
        run = runs.create(recipe, root=root, run_id="template")
        train.run(recipe, run, progress=False)
        assert run.status()["state"] == "succeeded", run.status()
        _TEMPLATE["path"] = run.path
    return _TEMPLATE["path"]


def _other_recipe_payload() -> bytes:
    """A full checkpoint payload of the same recipe with dim 16 instead of 8 (every shape differs)."""
    import torch

    from lego_core.data import datasets
    from lego_core.bricks.model import build
    from lego_core.bricks.recipe import Recipe

    other = Recipe.from_yaml(RECIPE.replace("dim: 8", "dim: 16"))
    model = build(other, datasets.load(other.dataset.name, **other.dataset.options))
    payload = torch.load(_template() / "checkpoints" / "last.pt", weights_only=True)
    payload["model"] = model.state_dict()
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _saved(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _zip_of_text() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a model")
    return buffer.getvalue()


class _Code:  # pickles as a reference to a callable: what weights_only=True refuses to load
    def __reduce__(self):
        return (print, ("this must never run",))


# name -> the bytes that replace a checkpoint (computed when a case runs: some need the template)
DAMAGE = {
    "garbage": lambda good: b"\x80\x02this is not a checkpoint" * 20,
    "truncated": lambda good: good[: len(good) // 2],
    "truncated-header": lambda good: good[:64],
    "tail-cut": lambda good: good[:-20],
    "zero-byte": lambda good: b"",
    "empty-payload": lambda good: _saved({}),
    "wrong-keys": lambda good: _saved({"weights": {}, "epoch": 1}),
    "model-of-unknown-names": lambda good: _saved({"model": {"encoder.weight": __import__("torch").zeros(2)}}),
    "wrong-shape": lambda good: _other_recipe_payload(),
    "a-tensor": lambda good: _saved(__import__("torch").zeros(3)),
    "pickled-code": lambda good: pickle.dumps(_Code(), protocol=2),
    "git-lfs-pointer": lambda good: b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 12\n",
    "zip-of-text": lambda good: _zip_of_text(),
}


def _copy(damage: dict[str, str | None]):
    """arrange(): a copy of the template run; `damage` maps 'best'/'last' to a DAMAGE name, or to
    None (the file is removed), or 'directory' (a folder where the file should be)."""
    def arrange(tmp: Path) -> dict:
        run_dir = tmp / "run"
        shutil.copytree(_template(), run_dir)
        for name, how in damage.items():
            path = run_dir / "checkpoints" / f"{name}.pt"
            good = path.read_bytes()
            if how is None:
                path.unlink()
            elif how == "directory":
                path.unlink()
                path.mkdir()
            else:
                path.write_bytes(DAMAGE[how](good))
        return {"run_dir": run_dir, "reference": _template()}
    return arrange


def _evaluate(ctx: dict):
    return cli("evaluate", ctx["run_dir"])


def _resume(ctx: dict):
    return cli("train", "--run-dir", ctx["run_dir"], "--resume", "--quiet")


def _load_model(ctx: dict):
    from lego_core import runs
    from lego_core.runs.loading import load_model

    return load_model(runs.open(ctx["run_dir"]))


def _recovered(note: str):
    """check(): the run succeeded with the template's own test metrics, its log says (in one line)
    how it recovered, and nothing it records advises unsafe loading."""
    def check(ctx: dict, result) -> None:
        import json

        from lego_core import runs
        from lego_core.training.checkpoints import CHECKPOINT_KEYS, read_checkpoint

        run = runs.open(ctx["run_dir"])
        status = run.status()
        assert status["state"] == "succeeded" and not status.get("error"), status
        assert not any("weights_only" in str(value) for value in status.values()), status
        expected = json.loads((ctx["reference"] / "metrics.json").read_text())
        assert run.metrics()["test"] == expected["test"]  # the same result as the undamaged run
        log = run.log_path.read_text()
        assert "weights_only" not in log
        assert len([line for line in log.splitlines() if note in line]) == 1, log
        assert [r["epoch"] for r in run.history("epochs")] == [1]
        for name in ("last", "best"):  # both usable again
            read_checkpoint(run.path / "checkpoints" / f"{name}.pt", need=CHECKPOINT_KEYS)
    return check


def _untouched(ctx: dict) -> list[Path]:
    return [ctx["run_dir"]]


def _evaluate_case(damage: str, names: str = "best.pt") -> Case:
    return Case(f"ckpt-evaluate-{damage}-best", _copy({"best": damage}), _evaluate, exit=2, names=names,
                keep=_untouched)


CASES: list[Case] = [
    *[_evaluate_case(damage) for damage in DAMAGE],
    _evaluate_case("directory", names="best.pt"),
    Case("ckpt-evaluate-missing-best", _copy({"best": None}), _evaluate, exit=2, names="best.pt",
         keep=_untouched),
    Case("ckpt-evaluate-says-to-resume-or-retrain", _copy({"best": "garbage"}), _evaluate, exit=2,
         names="--resume`), otherwise train", keep=_untouched),
    Case("ckpt-load-model-garbage-best", _copy({"best": "garbage"}), _load_model, raises=RunError,
         names="best.pt", keep=_untouched),
    Case("ckpt-load-model-wrong-shape-best", _copy({"best": "wrong-shape"}), _load_model, raises=RunError,
         names="does not fit this recipe's model", keep=_untouched),
    # resume: an unusable last.pt is noted in the log and the run continues from best.pt
    *[Case(f"ckpt-resume-{damage}-last", _copy({"last": damage}), _resume, exit=0,
           keep=lambda ctx: [ctx["run_dir"] / "checkpoints" / "best.pt"],
           check=_recovered("resuming from best.pt"))
      for damage in ("garbage", "truncated", "zero-byte", "wrong-keys", "wrong-shape", "pickled-code")],
    # ... and with best.pt unusable too (or missing), from the beginning with a clean history
    Case("ckpt-resume-both-unreadable", _copy({"last": "garbage", "best": "truncated"}), _resume, exit=0,
         keep=lambda ctx: [ctx["run_dir"] / "recipe.yaml"],
         check=_recovered("best.pt is unusable too; starting from the beginning")),
    Case("ckpt-resume-garbage-last-no-best", _copy({"last": "garbage", "best": None}), _resume, exit=0,
         keep=lambda ctx: [ctx["run_dir"] / "recipe.yaml"],
         check=_recovered("there is no best.pt either; starting from the beginning")),
    # a finished run whose best.pt is damaged: last.pt ends the best epoch, so best.pt is rewritten from it
    Case("ckpt-resume-finished-run-with-garbage-best", _copy({"best": "garbage"}), _resume, exit=0,
         keep=lambda ctx: [ctx["run_dir"] / "checkpoints" / "last.pt"],
         check=_recovered("rewritten from last.pt")),
    Case("ckpt-resume-finished-run-with-wrong-shape-best", _copy({"best": "wrong-shape"}), _resume, exit=0,
         keep=lambda ctx: [ctx["run_dir"] / "checkpoints" / "last.pt"],
         check=_recovered("rewritten from last.pt")),
]
