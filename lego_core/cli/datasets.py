"""`python -m lego_core datasets ...`: list the datasets with their counts, and `add`, `remove`,
`show`, `formats` for registrations (lego_core.data.registration)."""
from __future__ import annotations

import argparse
import sys
import warnings

import yaml

from lego_core.core.errors import DataError, LegoError
from lego_core.data import registration
from lego_core.data.io import CONTENT_GAPS, DataWarning
from lego_core.data.datasets import available, load


SUBCOMMANDS = ("add", "remove", "show", "formats")


def parse_sets(items: list[str]) -> dict:
    """`--set key=value` pairs (values read as YAML scalars: 5 -> int, true -> bool)."""
    out = {}
    for item in items or []:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise DataError(f"--set {item!r} must look like key=value, e.g. --set seed=1")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def _counts_line(summary: dict) -> str:
    keys = [k for k in summary if k != "name"]
    return ", ".join(f"{summary[k]:,} {k.replace('_', ' ')}" for k in keys)


def main_registration(args: argparse.Namespace) -> int:
    """`datasets add|remove|show|formats ...` (args.names holds the subcommand and its arguments)."""
    command, rest = args.names[0], args.names[1:]
    if command != "add" and (args.format or args.name or args.set or getattr(args, "overwrite", False)
                             or getattr(args, "strict", False)):
        raise DataError(f"--name, --format, --set, --overwrite and --strict go with `datasets add`, not "
                        f"`datasets {command}`")
    if command == "formats":
        for row in registration.format_rows():
            print(f"{row['name']}: {row['title']}\n  layout:   {row['layout']}\n  protocol: {row['scheme']}: "
                  f"{row['protocol']}\n  options:  {row['options']}")
        return 0
    if len(rest) != 1:
        raise DataError(f"`datasets {command}` takes one {'PATH' if command == 'add' else 'NAME'}, got {len(rest)}")
    if command == "add":
        with warnings.catch_warnings(record=True) as caught:  # printed as one line each, not file:line + source
            warnings.simplefilter("always", DataWarning)
            dataset = registration.add(rest[0], args.name, args.format, overwrite=getattr(args, "overwrite", False),
                                       strict=getattr(args, "strict", False),
                                       progress=lambda line: print(line, file=sys.stderr, flush=True),
                                       **parse_sets(args.set))
        for warning in caught:
            print(f"warning: {' '.join(str(warning.message).split())}", file=sys.stderr)
        print(f"registered {dataset.name!r}: {_counts_line(dataset.summary())}")
        for note in dataset.info.get(CONTENT_GAPS) or []:
            print(f"  kept:     {note} (--strict refuses these)")
    elif command == "remove":
        registration.remove(rest[0])
        print(f"removed {rest[0]!r}")
    else:
        info = registration.show(rest[0])
        print(f"{info['name']} ({info['format']}): {info['description']}")
        print(f"  counts:   {_counts_line(info['counts'])}")
        print(f"  source:   {info['source'].get('path', info['source'])}")
        print(f"  options:  {info['options']}")
        if info["protocol"]:
            print(f"  protocol: {info['protocol']}")
        print(f"  items:    columns {info['item_columns']}; text {info['text_fields']}; category "
              f"{info['category_field']}")
        for note in info["content_gaps"]:
            print(f"  gaps:     {note}")
        for row in info["items"]:
            print(f"    {row}")
    return 0


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


COUNTS = ("items", "users", "clicks", "train_impressions", "valid_impressions", "test_impressions")


def main_datasets(args: argparse.Namespace) -> int:
    """Print name, items, users, clicks and impressions per split of each dataset (CLI handler);
    `datasets add|remove|show|formats ...` go to lego_core.data.registration. Registered datasets
    are listed from the counts stored at registration (nothing is loaded); built-ins are loaded
    (cached)."""
    names = list(getattr(args, "names", None) or [])
    if names and names[0] in SUBCOMMANDS:
        return main_registration(args)
    if any(getattr(args, flag, None) for flag in ("format", "name", "set", "overwrite", "strict")):
        raise DataError("--name, --format, --set, --overwrite and --strict go with `datasets add PATH`")
    entries = [{"name": n, "loadable": True, "reason": ""} for n in names] or available()
    rows = [["name", "items", "users", "clicks", "train", "valid", "test", "note"]]
    for entry in entries:
        if not entry["loadable"]:
            rows.append([entry["name"], "-", "-", "-", "-", "-", "-", entry["reason"]])
            continue
        s = entry.get("summary")
        if not s:
            try:
                s = load(entry["name"]).summary()
            except LegoError as exc:
                if names:
                    raise
                rows.append([entry["name"], "-", "-", "-", "-", "-", "-", str(exc)])
                continue
        rows.append([entry["name"]] + [f"{s.get(k, 0):,}" for k in COUNTS] + [""])
    print(_table(rows))
    return 0


def add_datasets_command(subparsers) -> argparse.ArgumentParser:
    """Register `datasets [NAME_OR_PATH ...]` and `datasets add|remove|show|formats` on an argparse
    subparsers object; the handler is stored as `func` (call `args.func(args)`)."""
    parser = subparsers.add_parser(
        "datasets", help="list, add, remove or show datasets",
        usage="python -m lego_core datasets [NAME_OR_PATH ...]\n"
              "       python -m lego_core datasets add PATH [--name N] [--format F] [--set key=value ...] "
              "[--overwrite] [--strict]\n"
              "       python -m lego_core datasets remove NAME | show NAME | formats",
        description="List the datasets that can be loaded here with their counts (with names or paths, load and "
                    "count those instead); `add` reads a dataset file or folder in any known format, checks it "
                    "and registers it; `remove` and `show` act on a registered one; `formats` lists the formats.")
    parser.add_argument("names", nargs="*", metavar="NAME_OR_PATH",
                        help="dataset names or folders, or add PATH / remove NAME / show NAME / formats")
    parser.add_argument("--name", help="add: the name to register (default: from the path)")
    parser.add_argument("--format", help="add: the format (default: detected; see `datasets formats`)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="add: a format option, e.g. seed=1")
    parser.add_argument("--overwrite", action="store_true",
                        help="add: replace a dataset already registered under this name")
    parser.add_argument("--strict", action="store_true",
                        help="add: refuse content gaps (empty titles, ...) instead of keeping and noting them")
    parser.set_defaults(func=main_datasets)
    return parser


