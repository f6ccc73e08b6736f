"""`lego export RUN -o DIR`: a serving bundle of a trained run (item table as Parquet, user encoder
and predictor as ONNX, model.json, a standalone recommend.py, TensorBoard projector files), from
`lego_core.runs.export`."""
from __future__ import annotations

import argparse
import json


def cmd_export(args: argparse.Namespace) -> int:
    from lego_core import runs
    from lego_core.runs import export

    info = export.export(runs.open(args.run), args.output)
    print(json.dumps({"bundle": args.output, "items": info["dataset"]["items"], "dim": info["dim"],
                      "onnx_max_abs_difference": info["onnx_max_abs_difference"], "notes": info["notes"],
                      "projector": f"tensorboard --logdir {args.output}/projector"}, indent=2))
    return 0


def add_export_command(sub) -> None:
    p = sub.add_parser("export", help="write a serving bundle of a run: items.parquet, ONNX user encoder and "
                                      "predictor, model.json, recommend.py, TensorBoard projector files")
    p.add_argument("run", help="run id (a folder of cache/runs) or run folder")
    p.add_argument("-o", "--output", required=True, help="a new (or empty) folder for the bundle")
    p.set_defaults(func=cmd_export)
