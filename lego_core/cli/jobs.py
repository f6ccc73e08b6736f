"""`python -m lego_core jobs launch|list|status|cancel|resume|logs`, and `python -m lego_core.jobs`
(the same commands, or `worker RUN_DIR -- CMD...`: a job's supervisor, `jobs.supervise`)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from lego_core import jobs, runs
from lego_core.core.errors import LegoError, one_line
from lego_core.cli.args import count, positive_int


def add_jobs_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `jobs launch|list|status|cancel|resume|logs`; each sets `func(args) -> exit code`."""
    parser = subparsers.add_parser("jobs", help="launch, list, cancel and resume background training runs")
    parser.add_argument("--runs-dir", default=None, help="folder of runs (default: cache/runs)")
    sub = parser.add_subparsers(dest="jobs_command", required=True)

    p = sub.add_parser("launch", help="start a recipe in the background (queued if no slot is free)")
    p.add_argument("recipe", help="recipe .yaml file or preset name")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--nproc", type=positive_int, default=1, help="processes per node (torchrun DDP when > 1)")
    p.add_argument("--nnodes", type=positive_int, default=1, help="number of machines")
    p.add_argument("--node-rank", type=count, default=0, help="this machine's rank (0..nnodes-1)")
    p.add_argument("--rdzv-endpoint", default=None, help="host:port of node 0 (multi-node)")
    p.add_argument("--max-concurrent", type=positive_int, default=None, help="runs at once on this device")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. training.epochs=1 (repeatable)")
    p.set_defaults(func=_cmd_launch)

    p = sub.add_parser("list", help="all runs, newest first")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("status", help="a run's status as JSON")
    p.add_argument("run_id", type=runs.check_id)
    p.set_defaults(func=_cmd_status)
    p = sub.add_parser("cancel", help="stop a run (SIGTERM, then SIGKILL after --timeout)")
    p.add_argument("run_id", type=runs.check_id)
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=_cmd_cancel)
    p = sub.add_parser("resume", help="continue an interrupted, cancelled, failed or pruned run")
    p.add_argument("run_id", type=runs.check_id)
    p.set_defaults(func=_cmd_resume)
    p = sub.add_parser("logs", help="a run's log")
    p.add_argument("run_id", type=runs.check_id)
    p.add_argument("--tail", type=count, default=100)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the run and its supervisor end")
    p.set_defaults(func=_cmd_logs)
    return parser


def _cmd_launch(args: argparse.Namespace) -> int:
    run_id = jobs.launch(args.recipe, device=args.device, nproc=args.nproc, nnodes=args.nnodes,
                         node_rank=args.node_rank, rdzv_endpoint=args.rdzv_endpoint, root=args.runs_dir,
                         max_concurrent=args.max_concurrent, overrides=args.overrides or None)
    state = runs.open(run_id, args.runs_dir).status().get("state")
    print(f"{run_id}\t{state}")
    return 0


def _when(stamp: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if isinstance(stamp, (int, float)) else "-"


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [("RUN", "STATE", "DEVICE", "NPROC", "PROGRESS", "EPOCH", "STARTED", "ERROR")]
    for run in jobs.list_runs(args.runs_dir):
        st = run.status()
        progress = st.get("progress")
        rows.append((run.id, str(st.get("state")), str(st.get("device") or "-"), str(st.get("nproc") or "-"),
                     f"{progress:.0%}" if isinstance(progress, (int, float)) else "-",
                     str(st.get("epoch") if st.get("epoch") is not None else "-"), _when(st.get("started")),
                     str(st.get("error") or "")[:60]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(jobs.status(args.run_id, args.runs_dir), indent=2))
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    final = jobs.cancel(args.run_id, timeout=args.timeout, root=args.runs_dir)
    print(f"{args.run_id}\t{final.get('state')}")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    run_id = jobs.resume(args.run_id, args.runs_dir)
    print(f"{run_id}\t{runs.open(run_id, args.runs_dir).status().get('state')}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    run = runs.open(args.run_id, args.runs_dir)
    position = run.log_path.stat().st_size if run.log_path.exists() else 0  # before the tail: lose nothing
    text = jobs.logs(args.run_id, tail=args.tail, root=args.runs_dir)
    if text:
        print(text, flush=True)
    if not args.follow:
        return 0
    followed = b""
    try:
        while True:
            # the status first, the log after: once the job has ended and its supervisor wrote its last
            # line (or none of its processes is left to write one), this read holds everything
            status = jobs.status(run.id, args.runs_dir)
            if run.log_path.exists():
                with open(run.log_path, "rb") as handle:
                    handle.seek(position)
                    chunk = handle.read()
                position += len(chunk)
                followed = (followed + chunk)[-4096:]
                if chunk:
                    sys.stdout.write(chunk.decode("utf-8", errors="replace"))
                    sys.stdout.flush()
            if status.get("state") not in runs.ACTIVE_STATES and (
                    jobs.FINAL_LINE.encode() in followed or not jobs.run_pids(status)):
                return 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    """The jobs commands on their own (`main(["jobs", "list"])`), as `python -m lego_core jobs` runs them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m lego_core")
    add_jobs_command(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except LegoError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
