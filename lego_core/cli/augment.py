"""The `python -m lego_core augment DATASET --field NAME` subcommand: load a dataset by name or
path, generate one item field with the LLM of `lego_core.lm.generation`, and say where it was saved
(`lego_core.data.generated`). It sits above both, since loading by name is `lego_core.data.datasets`."""
from __future__ import annotations

import argparse
import json
import time

from lego_core.data.generated import field_path, load_augmented
from lego_core.core.errors import DataError
from lego_core.core.fileio import atomic_write_json
from lego_core.lm import generation
from lego_core.cli.args import positive_int


def _options(text: str | None) -> dict:
    try:
        options = json.loads(text) if text else {}
    except ValueError as exc:
        raise DataError(f"augment --options must be a JSON object such as '{{\"n_items\": 300}}' ({exc})") from None
    if not isinstance(options, dict):
        raise DataError(f"augment --options must be a JSON object, not {text!r}")
    return options


def _progress_writer(path: str | None):
    """`progress(done, total)` writing {done, total, updated} to `path` (the app's progress bar)."""
    if not path:
        return None

    def write(done: int, total: int) -> None:
        atomic_write_json(path, {"done": int(done), "total": int(total), "updated": time.time()}, fsync=False)
    return write


def cmd_augment(args: argparse.Namespace) -> int:
    """CLI handler: load the dataset, generate the field, print where it went and a few examples."""
    from lego_core.data import datasets

    dataset = load_augmented(datasets.load(args.dataset, **_options(args.options)))
    template = args.template or generation.default_template(dataset, args.field)
    if not template:
        raise DataError(f"augment needs --template for field {args.field!r} (e.g. \"Describe {{title}} in one "
                        f"sentence.\"); built-in prompts exist for {sorted(generation.INSTRUCTIONS)}")
    start = time.perf_counter()
    out = generation.augment(dataset, args.field, template, model=args.model, max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size, limit=args.limit, progress=_progress_writer(args.progress))
    seconds = time.perf_counter() - start
    n = out.num_items if args.limit is None else min(args.limit, out.num_items)
    print(f"{args.field}: {n} items in {seconds:.1f} s -> {field_path(out, args.field)}")
    for i in range(min(3, n)):
        print(f"  {out.items['item_id'].iloc[i]}: {out.items[args.field].iloc[i]}")
    return 0


def add_augment_command(subparsers) -> argparse.ArgumentParser:
    """Register `augment DATASET --field NAME --template TEXT [--model] [--limit N] [--batch-size]`."""
    p = subparsers.add_parser("augment", help="generate a new item field with a local instruct LLM",
                              description="Generate a new item field from existing ones with a local instruct model; "
                                          "answers are stored, so a repeated or interrupted run resumes.")
    p.add_argument("dataset", help="dataset name or path (see `datasets`)")
    p.add_argument("--field", required=True, help="name of the new item field, e.g. description")
    p.add_argument("--template", help="prompt with item fields in braces, e.g. \"Describe {title} ({genres}).\"; "
                                      f"built-in prompts exist for {', '.join(sorted(generation.INSTRUCTIONS))}")
    p.add_argument("--model", default=generation.DEFAULT_MODEL,
                   help="instruct model: smollm2 (packaged) or a local folder")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N items")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--max-new-tokens", type=positive_int, default=48)
    p.add_argument("--options", help="dataset options as JSON, e.g. '{\"n_items\": 300}' (the app's sidebar sizes)")
    p.add_argument("--progress", help="file to keep {done, total} in while generating (background jobs)")
    p.set_defaults(func=cmd_augment)
    return p
