"""Bad input for recipes, run folders, run ids, run status and run tables (CLI, jobs and Python API).

No case trains: run folders are made with `runs.create` and filled by hand, so each case takes
milliseconds. Refused launches must leave no run folder behind (`_no_new_run`).
"""
from __future__ import annotations

import io
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lego_core import jobs, runs
from lego_core.runs import recommend
from lego_core.core import process
from lego_core.core.errors import RunError
from tests.bad_inputs import Case, CliResult, cache_root, cli

TINY = """\
dataset: {name: synthetic, options: {n_items: 60, n_users: 30, n_impressions: 30, seed: 1}}
content: {name: attention}
behavior: {name: attention}
predictor: {name: dot}
training: {epochs: 1, dim: 8}
"""


def _runs_dir() -> Path:
    return cache_root() / "runs"


def _no_new_run(ctx: dict, result) -> None:
    """Nothing was created under the runs root (a refused launch makes no folder, no process)."""
    base = _runs_dir()
    before = set(ctx.get("runs_before", ()))
    now = {p.name for p in base.iterdir()} if base.exists() else set()
    assert now - before <= {".lock"}, f"new run folders: {sorted(now - before - {'.lock'})}"


def _recipe_file(text: str = TINY, name: str = "recipe.yaml", raw: bytes | None = None):
    def arrange(tmp: Path) -> dict:
        path = tmp / name
        path.write_bytes(raw if raw is not None else text.encode())
        return {"recipe": path}
    return arrange


def _tiny_with(**sections) -> str:
    """TINY with some top-level lines replaced (YAML flow mappings)."""
    lines = {line.split(":", 1)[0]: line for line in TINY.splitlines()}
    for key, value in sections.items():
        lines[key] = f"{key}: {value}"
    return "\n".join(lines.values()) + "\n"


def _existing_run(state: str = "succeeded", checkpoint: bool = True, recipe: str = TINY):
    """A run folder under the runs root, as training would have left it (no training needed)."""
    def arrange(tmp: Path) -> dict:
        run = runs.create(recipe)
        if state != "queued":
            run.set_training_status(state=state, started=time.time())
        if checkpoint:
            run.checkpoint_path("last").write_bytes(b"weights of the earlier run")
            run.checkpoint_path("best").write_bytes(b"best weights of the earlier run")
        run.write_metrics({"test": {"auc": 0.7}})
        return {"run": run, "runs_before": [p.name for p in _runs_dir().iterdir()]}
    return arrange


def _run_with_tables(damage: str | None = None, content: bytes = b"garbage"):
    """A run with item and user tables; `damage` names a file to overwrite."""
    def arrange(tmp: Path) -> dict:
        run = runs.create(TINY)
        run.set_training_status(state="succeeded")
        rng = np.random.default_rng(0)
        run.save_embeddings([f"i{k}" for k in range(6)], rng.normal(size=(6, 4)),
                            ["u0", "u1"], rng.normal(size=(2, 4)))
        if damage is not None:
            (run.embeddings_dir / damage).write_bytes(content)
        return {"run": run, "file": damage}
    return arrange


def _npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@contextmanager
def _env(**values: str | None):
    old = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _nothing(tmp: Path) -> dict:
    _runs_dir().mkdir(parents=True, exist_ok=True)
    return {"runs_before": [p.name for p in _runs_dir().iterdir()]}


CASES: list[Case] = []


def cli_case(id: str, arrange, argv, names, code: int = 2, keep=lambda ctx: [], check=None) -> None:
    CASES.append(Case(id, arrange, lambda ctx: cli(*argv(ctx)), exit=code, names=names, keep=keep, check=check))


def api_case(id: str, arrange, act, raises, names, keep=lambda ctx: [], check=None) -> None:
    CASES.append(Case(id, arrange, act, raises=raises, names=names, keep=keep, check=check))


# ---- recipes: refused before any run folder exists (train CLI and jobs launch) ----------------------
BAD_RECIPES = {
    "missing-file": (None, lambda t: ["no-such-recipe.yaml"], "no-such-recipe.yaml"),
    "not-utf8": (_recipe_file(raw=b"content: {name: \xff\xfe}\n"), None, "not UTF-8"),
    "bad-yaml": (_recipe_file("content: [unclosed\n"), None, "not valid YAML"),
    "not-a-mapping": (_recipe_file("- a\n- b\n"), None, "mapping"),
    "empty-file": (_recipe_file(""), None, "mapping"),
    "unknown-brick": (_recipe_file(_tiny_with(content="{name: nope}")), None, "nope"),
    "unknown-param": (_recipe_file(_tiny_with(content="{name: attention, params: {wings: 2}}")), None, "wings"),
    "param-out-of-range": (_recipe_file(_tiny_with(content="{name: attention, params: {heads: 1000}}")), None,
                           "heads"),
    "param-wrong-type": (_recipe_file(_tiny_with(content="{name: attention, params: {heads: many}}")), None,
                         "heads"),
    "heads-do-not-divide-dim": (_recipe_file(_tiny_with(content="{name: attention, params: {heads: 3}}")), None,
                                "training.dim"),
    "behavior-heads-do-not-divide-dim": (_recipe_file(_tiny_with(behavior="{name: attention, params: {heads: 3}}")),
                                         None, "training.dim"),
    "incompatible-bricks": (_recipe_file(_tiny_with(predictor="{name: miner}")), None, "miner"),
    "unknown-dataset": (_recipe_file(_tiny_with(dataset="{name: no-such-data}")), None, "no-such-data"),
    "bad-dataset-option": (_recipe_file(_tiny_with(dataset="{name: ml-100k, options: {negativez: 5}}")), None,
                           "negativez"),
    "synthetic-option-not-a-number": (_recipe_file(_tiny_with(dataset="{name: synthetic, options: {n_items: abc}}")),
                                      None, "n_items"),
    "synthetic-option-huge": (_recipe_file(_tiny_with(dataset="{name: synthetic, options: {n_items: 1.0e+12}}")),
                              None, "n_items"),
    "negatives-below-zero": (_recipe_file(_tiny_with(dataset="{name: ml-100k, options: {negatives: -1}}")), None,
                             "negatives"),
    "absent-gpu": (_recipe_file(_tiny_with(training="{epochs: 1, dim: 8, device: 'cuda:3'}")), None, "cuda:3"),
    "unknown-device": (_recipe_file(_tiny_with(training="{epochs: 1, dim: 8, device: tpu}")), None,
                       "training.device"),
    "zero-epochs": (_recipe_file(_tiny_with(training="{epochs: 0, dim: 8}")), None, "training.epochs"),
    "unknown-metric": (_recipe_file(_tiny_with(training="{epochs: 1, dim: 8, metric: accuracy}")), None,
                       "training.metric"),
    "loss-predictor-lacks": (_recipe_file(_tiny_with(predictor="{name: din}", training="{dim: 8, loss: hinge}")),
                             None, "training.loss"),
    "unknown-section": (_recipe_file(TINY + "optimizer: {name: sgd}\n"), None, "optimizer"),
}
for key, (arrange, argv, names) in BAD_RECIPES.items():
    arrange = arrange or _nothing
    argv = argv or (lambda ctx: [ctx["recipe"]])

    def with_runs(arrange=arrange):
        def inner(tmp):
            ctx = arrange(tmp)
            ctx.update(_nothing(tmp))
            return ctx
        return inner

    cli_case(f"runs-train-recipe-{key}", with_runs(), lambda ctx, a=argv: ["train", *a(ctx), "--quiet"], names,
             check=_no_new_run)
    cli_case(f"runs-launch-recipe-{key}", with_runs(), lambda ctx, a=argv: ["jobs", "launch", *a(ctx)], names,
             check=_no_new_run)

cli_case("runs-train-unknown-preset", _nothing, lambda ctx: ["train", "nrmss"], "unknown preset", check=_no_new_run)
cli_case("runs-train-override-without-equals", _nothing, lambda ctx: ["train", "nrms", "--set", "training.epochs"],
         "key=value", check=_no_new_run)
cli_case("runs-train-override-into-a-value", _nothing,
         lambda ctx: ["train", "nrms", "--set", "training.epochs.x=1"], "training.epochs.x", check=_no_new_run)
cli_case("runs-launch-absent-gpu-device-flag", _recipe_file(),
         lambda ctx: ["jobs", "launch", ctx["recipe"], "--device", "cuda:3"], "cuda:3", check=_no_new_run)
cli_case("runs-launch-unknown-device-flag", _recipe_file(),
         lambda ctx: ["jobs", "launch", ctx["recipe"], "--device", "tpu"], "device", check=_no_new_run)
cli_case("runs-launch-zero-processes", _recipe_file(),
         lambda ctx: ["jobs", "launch", ctx["recipe"], "--device", "cpu", "--nproc", "0"], "nproc",
         check=_no_new_run)
cli_case("runs-launch-multinode-without-endpoint", _recipe_file(),
         lambda ctx: ["jobs", "launch", ctx["recipe"], "--device", "cpu", "--nnodes", "2"], "rdzv_endpoint",
         check=_no_new_run)
cli_case("runs-launch-node-rank-out-of-range", _recipe_file(),
         lambda ctx: ["jobs", "launch", ctx["recipe"], "--device", "cpu", "--nnodes", "2", "--node-rank", "2",
                      "--rdzv-endpoint", "node0:29500"], "node_rank", check=_no_new_run)
cli_case("runs-launch-zero-concurrency", _recipe_file(),
         lambda ctx: ["jobs", "launch", ctx["recipe"], "--device", "cpu", "--max-concurrent", "0"], "--max-concurrent",
         check=_no_new_run)


def _launch_with_bad_limit_env(ctx):
    with _env(LEGO_MAX_CONCURRENT="many"):
        return cli("jobs", "launch", ctx["recipe"], "--device", "cpu")


CASES.append(Case("runs-launch-bad-concurrency-variable", _recipe_file(), _launch_with_bad_limit_env, exit=2,
                  names="LEGO_MAX_CONCURRENT", check=_no_new_run))

# ---- run folders: one recipe per folder, nothing overwritten -----------------------------------------
_keep_run = lambda ctx: [ctx["run"].path]  # noqa: E731


def _train_recipe_into_existing(ctx):
    recipe = ctx["tmp"] / "other.yaml"
    recipe.write_text(_tiny_with(training="{epochs: 1, dim: 16}"))
    return cli("train", recipe, "--run-dir", ctx["run"].path, "--quiet")


CASES += [
    Case("runs-train-recipe-into-existing-run", _existing_run(), _train_recipe_into_existing, exit=2,
         names="already exists", keep=_keep_run, check=_no_new_run),
    Case("runs-train-same-recipe-into-existing-run", _existing_run(),
         lambda ctx: cli("train", ctx["run"].recipe_path, "--run-dir", ctx["run"].path, "--quiet"), exit=2,
         names="--resume", keep=_keep_run, check=_no_new_run),
    Case("runs-train-changed-recipe-over-existing-run", _existing_run(),
         lambda ctx: cli("train", "--run-dir", ctx["run"].path, "--set", "training.dim=16", "--quiet"), exit=2,
         names="recipe.yaml", keep=_keep_run),
    Case("runs-train-finished-run-again-without-resume", _existing_run(),
         lambda ctx: cli("train", "--run-dir", ctx["run"].path, "--quiet"), exit=2, names="--resume",
         keep=_keep_run),
    Case("runs-train-failed-run-again-without-resume", _existing_run(state="failed"),
         lambda ctx: cli("train", "--run-dir", ctx["run"].path, "--quiet"), exit=2, names="--resume",
         keep=_keep_run),
    Case("runs-train-run-another-process-trains", _existing_run(state="running"),
         lambda ctx: (ctx["run"].set_training_status(pid=os.getppid(), start_ticks=process.start_ticks(os.getppid())), cli("train", "--run-dir", ctx["run"].path,
                                                                    "--resume", "--quiet"))[1],
         exit=2, names="cancel it first", keep=lambda ctx: [ctx["run"].path / "checkpoints"]),
    Case("runs-train-into-folder-with-other-files", lambda tmp: {"folder": _folder_with_file(tmp)},
         lambda ctx: cli("train", "nrms", "--run-dir", ctx["folder"], "--quiet"), exit=2, names="already exists",
         keep=lambda ctx: [ctx["folder"]]),
    Case("runs-train-run-dir-is-a-file", lambda tmp: {"file": _a_file(tmp)},
         lambda ctx: cli("train", "nrms", "--run-dir", ctx["file"], "--quiet"), exit=2, names="is a file",
         keep=lambda ctx: [ctx["file"]]),
    Case("runs-train-run-dir-under-proc", _nothing,
         lambda ctx: cli("train", "nrms", "--run-dir", "/proc/lego-run", "--quiet"), exit=2, names="/proc/lego-run"),
    Case("runs-train-run-dir-bad-name", _nothing,
         lambda ctx: cli("train", "nrms", "--run-dir", ctx["tmp"] / "my run!", "--quiet"), exit=2,
         names="run id"),
    Case("runs-train-neither-recipe-nor-run", _nothing, lambda ctx: cli("train"), exit=2, names="give a recipe"),
    Case("runs-train-run-dir-not-a-run", lambda tmp: {"folder": _folder_with_file(tmp)},
         lambda ctx: cli("train", "--run-dir", ctx["folder"]), exit=2, names="not a run folder",
         keep=lambda ctx: [ctx["folder"]]),
    Case("runs-train-run-dir-missing", _nothing, lambda ctx: cli("train", "--run-dir", ctx["tmp"] / "nowhere"),
         exit=2, names="not found"),
    Case("runs-evaluate-missing-folder", _nothing, lambda ctx: cli("evaluate", ctx["tmp"] / "nowhere"), exit=2,
         names="not found"),
    Case("runs-evaluate-without-best-checkpoint", _existing_run(state="queued", checkpoint=False),
         lambda ctx: cli("evaluate", ctx["run"].path), exit=2, names="best", keep=_keep_run),
]


def _folder_with_file(tmp: Path) -> Path:
    folder = tmp / "my-notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    return folder


def _a_file(tmp: Path) -> Path:
    path = tmp / "a-file"
    path.write_text("keep me")
    return path


# ---- cache folder unusable ------------------------------------------------------------------------
def _with_cache_dir(value_of):
    def act(ctx):
        with _env(LEGO_CACHE_DIR=str(value_of(ctx))):
            return cli("train", "nrms", "--quiet")
    return act


CASES += [
    Case("runs-cache-dir-is-a-file", lambda tmp: {"file": _a_file(tmp)}, _with_cache_dir(lambda ctx: ctx["file"]),
         exit=2, names="LEGO_CACHE_DIR", keep=lambda ctx: [ctx["file"]]),
    Case("runs-cache-dir-under-proc", _nothing, _with_cache_dir(lambda ctx: "/proc/lego-cache"), exit=2,
         names="LEGO_CACHE_DIR"),
    Case("runs-jobs-list-cache-dir-is-a-file", lambda tmp: {"file": _a_file(tmp)},
         lambda ctx: (lambda: _list_with_cache(ctx["file"]))(), exit=2, names="LEGO_CACHE_DIR",
         keep=lambda ctx: [ctx["file"]]),
]


def _list_with_cache(path):
    with _env(LEGO_CACHE_DIR=str(path)):
        return cli("jobs", "list")


# ---- run ids: confined to the runs root ----------------------------------------------------------
def _outside(tmp: Path) -> dict:
    """A run-like folder outside the runs root, reachable by a relative id with '..'."""
    ctx = _existing_run()(tmp)
    outside = cache_root() / "outside"
    outside.mkdir()
    (outside / "recipe.yaml").write_text(TINY)
    (outside / "status.json").write_text('{"state": "interrupted"}')
    ctx["outside"] = outside
    return ctx


_keep_outside = lambda ctx: [ctx["outside"]]  # noqa: E731
for verb in ("status", "cancel", "resume", "logs"):
    for label, bad in (("dotdot", "../outside"), ("slash", "a/b"), ("leading-dot", ".hidden"),
                       ("trailing-newline", "{run}\n")):
        cli_case(f"runs-jobs-{verb}-id-{label}", _outside,
                 lambda ctx, v=verb, b=bad: ["jobs", v, b.format(run=ctx["run"].id)], "run id", keep=_keep_outside,
                 check=lambda ctx, result: _no_lock(ctx["outside"]))


def _no_lock(folder: Path) -> None:
    for lock in (folder / ".status.lock", folder.parent / ".lock"):
        assert not lock.exists(), f"{lock} was written outside the runs root"


CASES += [
    Case("runs-open-relative-path-outside", _outside, lambda ctx: runs.open("../outside"), raises=RunError,
         names="run id", keep=_keep_outside),
    Case("runs-open-id-trailing-newline", _existing_run(), lambda ctx: runs.open(ctx["run"].id + "\n"),
         raises=RunError, names="run id"),
    Case("runs-create-id-with-slash", _nothing, lambda ctx: runs.create(TINY, run_id="a/b"), raises=RunError,
         names="run id"),
    Case("runs-create-id-trailing-newline", _nothing, lambda ctx: runs.create(TINY, run_id="fine\n"),
         raises=RunError, names="run id"),
    Case("runs-create-id-dotdot", _nothing, lambda ctx: runs.create(TINY, run_id=".."), raises=RunError,
         names="run id"),
    Case("runs-delete-relative-path-outside", _outside, lambda ctx: jobs.delete("../outside"), raises=RunError,
         names="run id", keep=_keep_outside),
    Case("runs-jobs-status-unknown-id", _nothing, lambda ctx: cli("jobs", "status", "no-such-run"), exit=2,
         names="not found"),
]

# ---- run status ------------------------------------------------------------------------------------
def _garbage_status(content: bytes):
    def arrange(tmp: Path) -> dict:
        ctx = _existing_run(state="interrupted")(tmp)
        ctx["run"].status_path.write_bytes(content)
        return ctx
    return arrange


for label, content in (("garbage", b"\x00\x01 not json"), ("truncated", b'{"state": "interr'),
                       ("a-list", b'["interrupted"]')):
    for verb in ("resume", "cancel"):
        cli_case(f"runs-jobs-{verb}-status-{label}", _garbage_status(content),
                 lambda ctx, v=verb: ["jobs", v, ctx["run"].id], "status.json", keep=_keep_run)
    cli_case(f"runs-train-resume-status-{label}", _garbage_status(content),
             lambda ctx: ["train", "--run-dir", ctx["run"].path, "--resume", "--quiet"], "status.json",
             keep=_keep_run)

CASES += [
    Case("runs-jobs-list-with-garbage-status", _garbage_status(b"{{{"), lambda ctx: cli("jobs", "list"), exit=0,
         keep=_keep_run, check=lambda ctx, r: _listed(ctx, r, "unknown")),
    Case("runs-jobs-resume-succeeded-run", _existing_run(), lambda ctx: cli("jobs", "resume", ctx["run"].id),
         exit=2, names="only interrupted", keep=_keep_run),
    Case("runs-jobs-cancel-succeeded-run", _existing_run(), lambda ctx: cli("jobs", "cancel", ctx["run"].id),
         exit=2, names="only queued or running", keep=_keep_run),
    Case("runs-set-status-unknown-state", _existing_run(), lambda ctx: ctx["run"].set_training_status(state="exploded"),
         raises=ValueError, names="exploded", keep=_keep_run),
]


def _listed(ctx: dict, result: CliResult, state: str) -> None:
    line = next(line for line in result.stdout.splitlines() if line.startswith(ctx["run"].id))
    assert state in line


# ---- run tables (embeddings, top items, metrics) ---------------------------------------------------
TABLE_DAMAGE = {
    "items-garbage": ("items.npy", b"garbage", lambda ctx: ctx["run"].item_embeddings()),
    "items-empty": ("items.npy", b"", lambda ctx: ctx["run"].item_embeddings()),
    "items-truncated": ("items.npy", _npy_bytes(np.ones((6, 4), np.float32))[:90],
                        lambda ctx: ctx["run"].item_embeddings()),
    "items-pickled-objects": ("items.npy", _npy_bytes(np.array([{"a": 1}] * 6, dtype=object), allow_pickle=True),
                              lambda ctx: ctx["run"].item_embeddings()),
    "items-wrong-dtype": ("items.npy", _npy_bytes(np.array(["a"] * 6)), lambda ctx: ctx["run"].item_embeddings()),
    "item-ids-garbage": ("item_ids.json", b"[1, 2", lambda ctx: ctx["run"].item_embeddings()),
    "item-ids-not-a-list": ("item_ids.json", b'{"a": 1}', lambda ctx: ctx["run"].item_embeddings()),
    "item-ids-wrong-length": ("item_ids.json", b'["i0"]', lambda ctx: ctx["run"].item_embeddings()),
    "users-garbage": ("users.npy", b"\x93NUMPY garbage", lambda ctx: ctx["run"].user_embeddings()),
    "users-one-dimensional": ("users.npy", _npy_bytes(np.ones(2, np.float32)), lambda ctx: ctx["run"].user_embeddings()),
}
for label, (name, content, act) in TABLE_DAMAGE.items():
    api_case(f"runs-table-{label}", _run_with_tables(name, content), act, RunError,
             names=name, keep=lambda ctx: [ctx["run"].embeddings_dir])

CASES += [
    Case("runs-metrics-garbage", _existing_run(), lambda ctx: (ctx["run"].metrics_path.write_text("{oops"),
                                                               ctx["run"].metrics())[1],
         raises=RunError, names="metrics.json"),
    Case("runs-recommend-before-best-checkpoint", _run_with_tables(), lambda ctx: recommend.recommend(ctx["run"], "u0"),
         raises=RunError, names="best", keep=lambda ctx: [ctx["run"].path]),
    Case("runs-history-torn-line-is-skipped", _existing_run(), lambda ctx: _torn(ctx)),
]


def _torn(ctx: dict) -> None:
    run = ctx["run"]
    (run.path / "epochs.jsonl").write_bytes(b'{"epoch": 1}\n{"epo')
    assert run.history("epochs") == [{"epoch": 1}]
    run.append("epochs", {"epoch": 2})
    assert run.history("epochs") == [{"epoch": 1}, {"epoch": 2}]


# ---- output pipes ---------------------------------------------------------------------------------
class _ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def _list_into_closed_pipe(ctx):
    """`jobs list | head -c1`: the reader is gone after the first byte."""
    from lego_core.cli.main import main

    real_stdout, sys.stdout = sys.stdout, _ClosedPipe()
    try:
        code = main(["jobs", "list"])
    finally:
        sys.stdout = real_stdout
    return CliResult(code, "", "")


CASES.append(Case("runs-jobs-list-into-closed-pipe", _existing_run(), _list_into_closed_pipe, exit=0,
                  keep=_keep_run))


# ---- damaged inputs of a run: a registered dataset, a recipe.yaml ---------------------------------
def _registered_truncated(tmp: Path) -> dict:
    """A registered dataset whose arrays/seq_items.npy is cut short, and a recipe training on it."""
    import pandas as pd

    from lego_core.data import datasets

    src = tmp / "src"
    src.mkdir()
    pd.DataFrame({"sku": [f"P{i}" for i in range(8)], "name": [f"product {i}" for i in range(8)]}).to_csv(
        src / "items.csv", index=False)
    pd.DataFrame({"who": ["a"] * 4 + ["b"] * 4, "what": [f"P{i}" for i in range(8)],
                  "when": [10, 20, 30, 40, 5, 6, 7, 8]}).to_csv(src / "clicks.csv", index=False)
    datasets.register_tables("shop", src / "items.csv", src / "clicks.csv",
                             {"item_id": "sku", "text": ["name"], "user": "who", "item": "what", "timestamp": "when"},
                             negatives=3)
    folder = cache_root() / "datasets" / "shop"
    npy = folder / "arrays" / "seq_items.npy"
    npy.write_bytes(npy.read_bytes()[:60])
    recipe = tmp / "recipe.yaml"
    recipe.write_text(_tiny_with(dataset="{name: shop}"))
    return {"recipe": recipe, "run_dir": tmp / "run", "folder": folder}


def _failed_naming_arrays(ctx: dict, result: CliResult) -> None:
    status = runs.open(ctx["run_dir"]).status()
    assert status["state"] == "failed" and "seq_items.npy" in status["error"], status


def _recipe_not_utf8(ctx_run: dict) -> dict:
    ctx_run["run"].recipe_path.write_bytes(b"content: {name: \xff\xfe}\n")
    return ctx_run


CASES += [
    Case("runs-train-registered-dataset-truncated-arrays",
         _registered_truncated, lambda ctx: cli("train", ctx["recipe"], "--run-dir", ctx["run_dir"], "--quiet"),
         exit=2, names="seq_items.npy", keep=lambda ctx: [ctx["folder"]], check=_failed_naming_arrays),
    Case("runs-evaluate-recipe-not-utf8", lambda tmp: _recipe_not_utf8(_existing_run()(tmp)),
         lambda ctx: cli("evaluate", ctx["run"].path), exit=2, names="recipe.yaml is not UTF-8",
         keep=_keep_run),
    Case("runs-resume-recipe-not-utf8", lambda tmp: _recipe_not_utf8(_existing_run(state="failed")(tmp)),
         lambda ctx: cli("train", "--run-dir", ctx["run"].path, "--resume", "--quiet"), exit=2,
         names="recipe.yaml is not UTF-8", keep=_keep_run),
]
