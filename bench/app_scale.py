"""The app at MIND-large scale: each page's first render and each interaction, timed through
Streamlit's AppTest on a registered synthetic MIND folder (`lego_core.data.readers.synthetic_mind`,
160k news and 1M users at --scale 1), with the peak RSS of the process that serves them.

Two fresh subprocesses, so the serving one's peak RSS is its own: `prepare` registers the folder,
trains a tiny NRMS for a few steps (its item and user tables written as training writes them) and
runs a sweep of --runs stand-in trials (real run folders, metrics written by a stand-in trainer) for
Experiments and Leaderboard; `measure` opens the app once (the first render loads the dataset), then
every page, then the interactions: find a user by part of their id, pick one (top-10 with
explanations), the item map (PCA at once, UMAP in the background), a user on the map, filters.

    nice -n 10 .venv/bin/python bench/app_scale.py [--scale 0.1 | --folder /tmp/mindL/mind] [--runs 300]

tests/test_app_scale.py runs `prepare` and `measure` on a tiny folder and checks what they return.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
import lego_core  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)

FULL = dict(n_news=160_000, n_users=1_000_000, n_train=2_200_000, n_dev=370_000)
PAGE_TARGET, ACTION_TARGET, UMAP_TARGET, RSS_TARGET_GB = 5.0, 2.0, 60.0, 6.0
NAME = "mind-scale"
# A sweep trial that writes what a finished run holds (status, epochs, metrics) without training.
STAND_IN = r'''
import sys, time
from lego_core import runs
run = runs.open(sys.argv[1])
recipe = run.recipe()
quality = {"attention": 0.70, "cnn": 0.66, "pooling": 0.62}.get(recipe.content.name, 0.6) + 0.001 * (recipe.training.seed % 7)
run.set_training_status(state="running", started=time.time(), progress=0.0)
run.rewrite_history("epochs", [{"epoch": 1, "loss": 0.5, "valid_auc": quality}])
run.write_metrics({"valid": {"auc": quality}, "test": {"auc": quality - 0.01}, "train_seconds": 1.0,
                   "parameters": 1000 * len(recipe.content.name), "best_epoch": 1})
run.set_training_status(state="succeeded", ended=time.time(), progress=1.0)
'''


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def tiny_nrms(name: str, steps: int):
    from lego_core.bricks.recipe import Recipe

    return Recipe.preset("nrms").with_overrides({
        "dataset.name": name, "training.dim": 32, "training.batch_size": 32, "training.negatives": 4,
        "training.max_history": 30, "training.fields": ["title"], "training.glove": False, "training.epochs": 1,
        "training.max_steps_per_epoch": steps, "training.eval_batch_size": 2048, "training.device": "cpu"})


def prepare(folder: str | Path, name: str = NAME, runs: int = 300, steps: int = 5) -> dict:
    """Register `folder` as `name`, train a tiny NRMS on it, sweep `runs` stand-in trials
    (in $LEGO_CACHE_DIR). Returns the trained run's id and the time of each step."""
    from lego_core import runs as run_store
    from lego_core import sweeps
    from lego_core.data import datasets
    from lego_core.training import train

    out = {}
    start = time.perf_counter()
    datasets.register_mind(name, folder)
    out["register_s"] = time.perf_counter() - start
    start = time.perf_counter()
    recipe = tiny_nrms(name, steps)
    run = run_store.create(recipe)
    train.run(recipe, run, progress=False)
    out["train_s"], out["run_id"] = time.perf_counter() - start, run.id
    if runs:
        start = time.perf_counter()
        script = Path(tempfile.mkdtemp(prefix="app-scale-")) / "stand_in.py"
        script.write_text(STAND_IN)
        contents = ["attention", "cnn", "pooling"]
        out["sweep_id"] = sweeps.run({
            "name": "scale", "base": "nrms", "set": {"dataset.name": name}, "slots": {"content": contents},
            "seeds": -(-runs // len(contents)), "budget": {"trials": runs}, "sampler": "grid",
            "command": [sys.executable, str(script), "{run_dir}"]}, poll=0.05, echo=False)
        out["sweep_s"] = time.perf_counter() - start
    return out


class Timer:
    """Rows of (what, seconds, target, check): each AppTest run timed, its exceptions fatal."""

    def __init__(self):
        self.rows: list[dict] = []

    def __call__(self, what: str, target: float, act, check=None):
        start = time.perf_counter()
        at = act()
        seconds = time.perf_counter() - start
        errors = [e.value for e in at.exception]
        if errors:
            raise AssertionError(f"{what}: {errors[0]}")
        self.rows.append({"what": what, "seconds": seconds, "target": target,
                          "check": check(at) if check else ""})
        return at


def _figure_points(at) -> int:
    """Item points drawn on the first map (its first traces: the items, one per colour)."""
    import base64

    import numpy as np

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    total = 0
    for trace in spec["data"]:
        if str(trace.get("name", "")).startswith(("user ", "found", "its ", "why")):
            continue
        values = trace.get("x", [])
        if isinstance(values, dict) and "bdata" in values:
            total += len(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))
        else:
            total += len(values)
    return total


def _trace_types(at) -> set:
    return {t.get("type") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}


def measure(name: str, run_id: str, timeout: float = 600, umap: bool = True) -> list[dict]:
    """Time the app's pages and interactions on dataset `name` with trained run `run_id`; rows of
    what, seconds, target and check (what the page showed). `umap` False leaves the UMAP view out
    (its first fit in a process with an empty numba cache compiles for about a minute)."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    from lego_core import runs
    from lego_core.explore import maps

    PagesManager.uses_pages_directory = False  # as a server after its first request (tests/test_app_pages)
    run = runs.open(run_id)
    item_count = len(run.item_embeddings()[0])
    timer = Timer()
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.session_state["dataset"] = name
    at.session_state["emb-method"] = "PCA"
    timer("Datasets (first page: loads the dataset)", PAGE_TARGET, at.run)
    start = time.perf_counter()  # app.py starts umap's warm-up once the first page is drawn: a user
    warming = maps.warm_umap()  # reads that page meanwhile; timed apart, so later rows do not share it
    if warming is not None:
        warming.result(timeout=timeout)
    timer.rows.append({"what": "UMAP warm-up after the first page (background)", "target": UMAP_TARGET,
                       "seconds": time.perf_counter() - start,
                       "check": "ran" if warming is not None else "nothing to warm (numba cache empty)"})
    for page in ("builder", "training", "experiments", "leaderboard", "users", "embeddings"):
        timer(f"{page.capitalize()}: first render", PAGE_TARGET, lambda: at.switch_page(f"pages/{page}.py").run(),
              (lambda a: f"{_figure_points(a):,} points, {'/'.join(sorted(_trace_types(a)))}")
              if page == "embeddings" else None)
    at.switch_page("pages/users.py").run()
    users = at.selectbox(key="users-user").options
    wanted = str(users[len(users) // 2])
    timer("Users: search a user id", ACTION_TARGET, lambda: at.text_input(key="users-query").set_value(wanted).run(),
          lambda a: f"{len(a.selectbox(key='users-user').options)} match(es), picked {a.selectbox(key='users-user').value}")
    timer("Users: another user's top-10 + why", ACTION_TARGET,
          lambda: at.text_input(key="users-query").set_value(str(users[-1])).run(),
          lambda a: f"{len(a.dataframe[0].value)} recommendations, "
                    f"{sum(m.value.count(chr(8592)) for m in a.markdown if m.value.startswith('1. '))} explained")
    at.switch_page("pages/embeddings.py").run()
    timer("Embeddings: highlight a user", ACTION_TARGET,
          lambda: at.selectbox(key="emb-user").set_value(at.selectbox(key="emb-user").options[1]).run())
    at.selectbox(key="emb-user").set_value(None).run()
    if umap:
        _umap_rows(timer, at, run, item_count, timeout)
    at.switch_page("pages/experiments.py").run()
    timer("Experiments: filter by text", ACTION_TARGET, lambda: at.text_input(key="exp-text").set_value("cnn").run(),
          lambda a: f"{len(a.dataframe[0].value)} rows" if a.dataframe else "")
    at.switch_page("pages/leaderboard.py").run()
    if "lb-config" in at.session_state and len(at.selectbox(key="lb-config").options) > 1:
        timer("Leaderboard: open a configuration", ACTION_TARGET,
              lambda: at.selectbox(key="lb-config").set_value(at.selectbox(key="lb-config").options[1]).run(),
              lambda a: f"{len(a.dataframe[1].value)} runs" if len(a.dataframe) > 1 else "")
    return timer.rows


def _umap_rows(timer: Timer, at, run, item_count: int, timeout: float) -> None:
    """Ask for UMAP (the PCA view shows at once), wait for the background fit, show the UMAP view."""
    from lego_core.explore import maps

    timer("Embeddings: UMAP asked (PCA meanwhile)", PAGE_TARGET,
          lambda: at.radio(key="emb-method").set_value("UMAP").run(), lambda a: a.title[0].value)
    start = time.perf_counter()
    _, vectors = run.item_embeddings()
    maps.start_umap(run.id, vectors, {"n_neighbors": maps.UMAP_DEFAULTS["n_neighbors"],
                                      "min_dist": maps.UMAP_DEFAULTS["min_dist"]}).result(timeout=timeout)
    waited = time.perf_counter() - start
    timer("Embeddings: UMAP view", UMAP_TARGET, at.run,
          lambda a: f"{_figure_points(a):,} of {item_count:,} items; waited {waited:.1f} s for UMAP")
    timer.rows[-1]["seconds"] += waited


def _child(what: str, args, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--name", args.name, "--runs", str(args.runs),
           "--steps", str(args.steps), "--folder", str(args.folder), "--run-id", str(args.run_id or "")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="fraction of MIND-large to generate")
    parser.add_argument("--folder", help="an existing MIND folder (train/ and dev/) instead of generating one")
    parser.add_argument("--runs", type=int, default=300, help="stand-in sweep trials for Experiments/Leaderboard")
    parser.add_argument("--steps", type=int, default=5, help="training steps of the tiny NRMS")
    parser.add_argument("--cache", help="LEGO_CACHE_DIR to use (default: a new temporary folder); "
                                        "with --run-id, the one holding that run")
    parser.add_argument("--run-id", help="measure only, with this trained run in --cache")
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--child", choices=["prepare", "measure"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "prepare":
        print(json.dumps({**prepare(args.folder, args.name, args.runs, args.steps), "peak_rss_gb": peak_gb()}))
        return
    if args.child == "measure":
        rows = measure(args.name, args.run_id)
        print(json.dumps({"rows": rows, "peak_rss_gb": peak_gb()}))
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from common import machine

    env = dict(os.environ)
    cache = Path(args.cache or tempfile.mkdtemp(prefix="app-scale-cache-"))
    env["LEGO_CACHE_DIR"] = str(cache)
    env.setdefault("LEGO_MAX_CONCURRENT", "2")
    if not args.folder:
        from lego_core.data.readers.synthetic_mind import write_mind_folder

        args.folder = cache / "mind"
        sizes = {k: max(1, int(v * args.scale)) for k, v in FULL.items()}
        write_mind_folder(args.folder, **sizes, seed=0)
    print(f"# app at MIND-large scale: {args.folder} (cache {cache})")
    print(f"# {machine()}")
    if not args.run_id:
        made = _child("prepare", args, env)
        if "error" in made:
            sys.exit(f"prepare failed: {made['error']}")
        args.run_id = made["run_id"]
        print(f"# prepared: register {made['register_s']:.1f} s, train {made['train_s']:.1f} s, "
              f"{args.runs} sweep runs {made.get('sweep_s', 0):.1f} s (peak {made['peak_rss_gb']:.2f} GB)")
    shutil.rmtree(cache / "umap", ignore_errors=True)  # a map stored by an earlier measure: fit it again
    found = _child("measure", args, env)
    if "error" in found:
        sys.exit(f"measure failed: {found['error']}")
    print(f"{'step':<46} {'seconds':>8} {'target':>7}  ok  check")
    for row in found["rows"]:
        ok = "yes" if row["seconds"] <= row["target"] else "NO"
        print(f"{row['what']:<46} {row['seconds']:8.2f} {row['target']:7.0f}  {ok:<3} {row['check']}")
    rss = found["peak_rss_gb"]
    print(f"{'peak RSS of the serving process (GB)':<46} {rss:8.2f} {RSS_TARGET_GB:7.0f}  "
          f"{'yes' if rss <= RSS_TARGET_GB else 'NO'}")


if __name__ == "__main__":
    main()
