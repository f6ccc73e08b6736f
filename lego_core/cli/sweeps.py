"""`python -m lego_core sweep run|status|resume|worker|export|stop`."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

STORAGE_HELP = ("database URL Optuna supports, shared by workers on several machines (default: the sweep's "
                "SQLite file cache/sweeps/<id>.db)")


def add_sweep_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `sweep ...`; each subcommand sets `func(args) -> exit code`."""
    parser = subparsers.add_parser("sweep", help="try many brick combinations and parameters, several seeds each")
    sub = parser.add_subparsers(dest="sweep_command", required=True)

    def common(p: argparse.ArgumentParser, runs_dir: bool = True) -> None:
        p.add_argument("--storage", default=None, metavar="URL", help=STORAGE_HELP)
        if runs_dir:
            p.add_argument("--runs-dir", default=None, help="folder of runs (default: cache/runs)")

    p = sub.add_parser("run", help="create a sweep from a spec and serve it (here, or --background)")
    p.add_argument("spec", help="sweep spec .yaml")
    p.add_argument("--id", default=None, help="sweep id (default: <name>-<time>-<random>)")
    p.add_argument("--background", action="store_true", help="start a background worker and return")
    common(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("status", help="a sweep's state and leaderboard head; all sweeps without an id")
    p.add_argument("sweep", nargs="?", default=None)
    p.add_argument("--json", action="store_true", help="the summary as JSON")
    common(p, runs_dir=False)
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("resume", help="continue a sweep where it stopped (here, or --background)")
    p.add_argument("sweep")
    p.add_argument("--background", action="store_true")
    common(p)
    p.set_defaults(func=_cmd_resume)

    p = sub.add_parser("worker", help="serve a sweep (one of several workers: run it on each machine with --storage)")
    p.add_argument("sweep")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between looks at the runs")
    common(p)
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("export", help="the leaderboard as CSV, Markdown or JSON (trials)")
    p.add_argument("sweep")
    p.add_argument("--format", choices=("csv", "markdown", "json"), default="csv")
    p.add_argument("--output", "-o", default=None, help="file to write (default: stdout)")
    common(p, runs_dir=False)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("stop", help="pause this machine's workers of a sweep (their runs keep a checkpoint)")
    p.add_argument("sweep")
    common(p, runs_dir=False)
    p.set_defaults(func=_cmd_stop)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from lego_core import sweeps

    sweep_id = sweeps.create(args.spec, storage=args.storage, sweep_id=args.id)
    print(sweep_id, flush=True)
    if args.background:
        sweeps.start_background(sweep_id, storage=args.storage, runs_dir=args.runs_dir)
        return 0
    sweeps.work(sweep_id, storage=args.storage, root=args.runs_dir)
    return _print_status(sweep_id, args.storage)


def _cmd_resume(args: argparse.Namespace) -> int:
    from lego_core import sweeps

    if args.background:
        print(sweeps.resume(args.sweep, storage=args.storage, runs_dir=args.runs_dir))
        return 0
    sweeps.work(args.sweep, storage=args.storage, root=args.runs_dir)
    return _print_status(args.sweep, args.storage)


def _cmd_worker(args: argparse.Namespace) -> int:
    from lego_core import sweeps
    from lego_core.sweeps.study import remember_storage

    remember_storage(args.sweep, args.storage)
    sweeps.work(args.sweep, storage=args.storage, root=args.runs_dir, poll=args.poll)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from lego_core.sweeps import leaderboard, list_sweeps

    if args.sweep is None:
        for sweep_id, storage in list_sweeps():
            try:
                summary = leaderboard.Snapshot.load(sweep_id, storage).summary()
                counts = summary["counts"]
                print(f"{sweep_id}\t{summary['state']}\t{counts['succeeded']} succeeded, {counts['pruned']} pruned, "
                      f"{counts['running']} running of {summary['planned']}")
            except Exception as exc:  # noqa: BLE001 - one unreadable sweep must not hide the others
                print(f"{sweep_id}\tunreadable: {str(exc).splitlines()[0][:120]}")
        return 0
    if args.json:
        summary = leaderboard.Snapshot.load(args.sweep, args.storage).summary()
        print(json.dumps(summary, indent=2, default=str))
        return 0
    return _print_status(args.sweep, args.storage)


def _print_status(sweep_id: str, storage: str | None) -> int:
    from lego_core.sweeps import leaderboard

    snap = leaderboard.Snapshot.load(sweep_id, storage)
    summary = snap.summary()
    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items() if v)
    print(f"sweep {sweep_id}: {summary['state']}; {counts or 'no trials yet'} (planned {summary['planned']}); "
          f"{summary['elapsed'] / 60:.1f} min" + (f" of {summary['minutes']:g}" if summary["minutes"] else ""))
    if summary["stopped"]:
        print(f"stopped: {summary['stopped']}")
    table = snap.table()
    if len(table):
        print(markdown(table.head(10), snap.spec.metric))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from lego_core.sweeps import leaderboard

    snap = leaderboard.Snapshot.load(args.sweep, args.storage)
    if args.format == "json":
        text = snap.trials_frame().to_json(orient="records", indent=2)
    elif args.format == "markdown":
        text = markdown(snap.table(), snap.spec.metric)
    else:
        text = snap.table().to_csv(index=False)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + ("\n" if not text.endswith("\n") else ""))
    else:
        sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from lego_core.sweeps import stop

    pids = stop(args.sweep, storage=args.storage)
    print(f"asked {len(pids)} worker(s) to pause" + (f": {', '.join(map(str, pids))}" if pids else ""))
    return 0


def markdown(table: Any, metric: str) -> str:
    """The leaderboard as a Markdown table (the format of docs/results.md)."""
    import pandas as pd

    def num(value: Any, fmt: str) -> str:
        return "-" if value is None or (isinstance(value, float) and value != value) else format(value, fmt)

    lines = [f"| rank | content | behaviour | predictor | params | seeds | valid {metric} (mean ± std) | "
             f"95% interval | ≈ | test {metric} | train s | parameters | pruned |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, row in table.iterrows():
        rank = "-" if pd.isna(row["rank"]) else str(int(row["rank"]))
        spread = f"{num(row['mean'], '.4f')} ± {num(row['std'], '.4f')}" if row["seeds"] else "-"
        interval = f"{num(row['low'], '.4f')} – {num(row['high'], '.4f')}" if row["seeds"] > 1 else "-"
        tie = "≈ " + ", ".join(map(str, row["overlaps"])) if row.get("tie") else ""
        lines.append(f"| {rank} | {row['content']} | {row['behavior']} | {row['predictor']} | {row['params'] or '-'} | "
                     f"{row['seeds']} | {spread} | {interval} | {tie} | {num(row.get(f'test_{metric}'), '.4f')} | "
                     f"{num(row.get('train_seconds'), '.1f')} | {num(row.get('parameters'), ',.0f')} | {row['pruned']} |")
    return "\n".join(lines)
