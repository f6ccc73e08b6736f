"""`python -m lego_core ...`: each subcommand lives with the module that owns it; this file wires
them and turns user mistakes (LegoError) into one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lego_core.core.errors import LegoError, RunError, one_line, os_error_line


def cmd_train(args: argparse.Namespace) -> int:
    from lego_core import runs
    from lego_core.training import train
    from lego_core.bricks.recipe import Recipe

    run_dir = Path(args.run_dir) if args.run_dir else None
    if args.recipe is None:  # continue/run an existing run folder (what jobs launch does)
        if run_dir is None:
            raise LegoError("give a recipe (file or preset name), or --run-dir of an existing run to continue")
        run = runs.open(run_dir)
        recipe = recipe_for(run, args.set or [], resume=args.resume)
    else:
        recipe = Recipe.load(args.recipe, args.set or []).check_runnable()
        if run_dir is None:
            run = runs.create(recipe)
        else:
            run = runs.create(recipe, root=run_dir.parent, run_id=run_dir.name)
    result = train.run(recipe, run, resume=args.resume, progress=not args.quiet)
    if result:
        print(json.dumps({"run": str(run.path), "test": result.get("test")}, indent=2))
    return 0


def recipe_for(run, overrides: list[str], resume: bool):
    """The recipe for `train --run-dir RUN`: the run's own recipe.yaml, where overrides may only move
    it to another device (as the job launcher does), since one folder never mixes two recipes.
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lego_core import runs
    from lego_core.runs.loading import evaluate_run

    result = evaluate_run(runs.open(Path(args.run_dir)), cached=not args.uncached, splits=args.splits)
    print(json.dumps(result, indent=2))
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse's own mistakes (an unknown flag, a missing argument) as the one line every other
    mistake gets: `error: ...`, exit 2; subcommand parsers inherit it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {' '.join(message.split())} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="lego" if Path(sys.argv[0]).name == "lego" else "python -m lego_core",
                                     description="Compose, train and inspect content-based recommenders.")
    sub = parser.add_subparsers(dest="command", required=True)

    from lego_core.cli.datasets import add_datasets_command

    add_datasets_command(sub)

    p = sub.add_parser("train", help="train a recipe, evaluate it and write a run directory")
    p.add_argument("recipe", nargs="?", help="recipe YAML file or preset name (e.g. nrms)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. training.epochs=1")
    p.add_argument("--run-dir", help="run directory (default: a new one under cache/runs)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="re-evaluate a finished run from its best checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--uncached", action="store_true", help="encode per impression (slow reference path)")
    p.add_argument("--splits", nargs="+", default=["valid", "test"])
    p.set_defaults(func=cmd_evaluate)

    from lego_core.cli.augment import add_augment_command
    from lego_core.cli.jobs import add_jobs_command
    from lego_core.cli.sweeps import add_sweep_command

    from lego_core.cli.recommend import add_recommend_command
    from lego_core.cli.export import add_export_command

    for adder in (add_augment_command, add_jobs_command, add_sweep_command, add_recommend_command, add_export_command):
        adder(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a full or closed output fails here, inside the handlers below
        return code
    except LegoError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`: the reader left; say nothing more, like other CLI tools
        try:  # and keep Python's exit-time flush from raising into the closed pipe
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except OSError as exc:  # a full disk, an output path under /proc, stdout on /dev/full
        _quiet_stdout()
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _quiet_stdout() -> None:
    """Drop what is left in a stdout that cannot be written, so Python's exit-time flush does not
    print a second error."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass

