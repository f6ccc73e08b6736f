"""`lego recommend RUN -o FILE`: the top-k of every user of a run (or `--users FILE|ids`), seen items
excluded unless `--include-seen`, streamed to Parquet or CSV (`lego_core.runs.topk`)."""
from __future__ import annotations

import argparse
import json

from lego_core.cli.args import positive_int


def cmd_recommend(args: argparse.Namespace) -> int:
    from lego_core import runs
    from lego_core.runs import topk

    users = topk.read_users(args.users) if args.users else None
    result = topk.write(runs.open(args.run), args.output, k=args.k, users=users,
                        exclude_seen=not args.include_seen, batch_size=args.batch_size, progress=not args.quiet)
    print(json.dumps(result, indent=2))
    return 0


def add_recommend_command(sub) -> None:
    p = sub.add_parser("recommend", help="write the top-k items of every user of a run to Parquet or CSV")
    p.add_argument("run", help="run id (a folder of cache/runs) or run folder")
    p.add_argument("-o", "--output", required=True, help="output file: .parquet or .csv")
    p.add_argument("-k", type=positive_int, default=10, help="items per user (default 10)")
    p.add_argument("--users", help="a file of user ids (one a line, or .csv/.parquet with user_id), or ids "
                                   "joined by commas (default: every user)")
    p.add_argument("--include-seen", action="store_true", help="keep items the user clicked before test time")
    p.add_argument("--batch-size", type=positive_int, default=1024, help="users scored together (default 1024)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_recommend)
