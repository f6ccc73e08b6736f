"""`python -m lego_core ...`: each subcommand lives with the module that owns it; this file wires
them and turns user mistakes (LegoError) into one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lego_core.errors import LegoError


def _load_recipe(spec: str, overrides: list[str]):
    from lego_core.recipe import Recipe, presets

    recipe = Recipe.preset(spec) if spec in presets() and not Path(spec).exists() else Recipe.from_yaml(Path(spec))
    return (recipe.with_overrides(overrides) if overrides else recipe).validate()


def cmd_train(args: argparse.Namespace) -> int:
    from lego_core import runs, train
    from lego_core.recipe import Recipe

    run_dir = Path(args.run_dir) if args.run_dir else None
    if args.recipe is None:  # continue/run an existing run directory (what jobs launch does)
        if run_dir is None or not (run_dir / "recipe.yaml").is_file():
            raise LegoError("give a recipe (file or preset name), or --run-dir of a run that holds recipe.yaml")
        run = runs.open(str(run_dir))
        recipe = Recipe.from_yaml(run.path / "recipe.yaml")
        recipe = (recipe.with_overrides(args.set) if args.set else recipe).validate()
    else:
        recipe = _load_recipe(args.recipe, args.set or [])
        if run_dir is not None and (run_dir / "recipe.yaml").is_file():
            run = runs.open(str(run_dir))
        else:
            run = runs.create(recipe, root=run_dir.parent if run_dir else None,
                              run_id=run_dir.name if run_dir else None)
    result = train.run(recipe, run, resume=args.resume, progress=not args.quiet)
    if result:
        print(json.dumps({"run": str(run.path), "test": result.get("test")}, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lego_core import runs

    from lego_core.rerun import evaluate_run

    result = evaluate_run(runs.open(args.run_dir), cached=not args.uncached, splits=args.splits)
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lego_core",
                                     description="Compose, train and inspect content-based recommenders.")
    sub = parser.add_subparsers(dest="command", required=True)

    from lego_core.datasets import add_datasets_command

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

    for module, adder in (("lego_core.lm.augment", "add_augment_command"), ("lego_core.jobs", "add_jobs_command")):
        try:
            mod = __import__(module, fromlist=[adder])
        except ImportError:
            continue
        getattr(mod, adder)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LegoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
