"""``exportloss check-ort-cuda``: static check for nodes onnxruntime's CUDA provider would run on the CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from .common import console, trt_models


def add_parser(sub) -> None:
    from ..export import EXPORTERS

    p = sub.add_parser("check-ort-cuda", help="static check: nodes onnxruntime's CUDA provider would run on the CPU")
    p.add_argument("names", nargs="*", metavar="NAME|PATH.onnx")
    p.add_argument("--all", action="store_true", help="every catalog graph")
    p.add_argument("--models", default="models", help="NAME is read from here as NAME.onnx, else exported (default: models)")
    p.add_argument("--exporter", choices=EXPORTERS, default="dynamo", help="exporter for graphs not in --models")
    p.add_argument("--json", metavar="PATH", help="also write the findings as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..ort_cuda import check_model, load_table

    table = Table(title="onnxruntime CUDA provider: nodes without a CUDA kernel (static, no GPU needed)")
    for column in ("graph", "source", "verdict"):
        table.add_column(column)
    reports, details = [], []
    for label, source, model in trt_models(args):
        report = check_model(model, name=label)
        reports.append(report)
        table.add_row(label, source, f"[{'green' if report.compatible else 'red'}]{report.verdict}[/]")
        details += [f"{label}: {finding}" for finding in report.findings]
    if args.json:
        Path(args.json).write_text(json.dumps({"table": load_table().source, "reports": [r.to_dict() for r in reports]}, indent=1) + "\n")
    console.print(table)
    for text in details:
        console.print(text, markup=False)
    failed = sum(not r.compatible for r in reports)
    console.print(f"{len(reports)} graph(s) checked against {load_table().source}; {failed} with CPU fallback nodes")
    return 1 if failed else 0
