"""``exportloss check-trt``: static TensorRT compatibility check against the parser's support tables."""

from __future__ import annotations

import argparse

from rich.table import Table

from .common import UsageError, add_profile_arguments, console, shape_profile, trt_models


def add_parser(sub) -> None:
    from ..export import EXPORTERS

    p = sub.add_parser("check-trt", help="static TensorRT compatibility check against the parser's support tables")
    p.add_argument("names", nargs="*", metavar="NAME|PATH.onnx")
    p.add_argument("--all", action="store_true", help="every catalog graph")
    p.add_argument("--trt-version", action="append", default=[], metavar="10.1|10.15|11",
                   help="TensorRT version to check against (repeatable; default: every supported version)")
    p.add_argument("--models", default="models", help="NAME is read from here as NAME.onnx, else exported (default: models)")
    p.add_argument("--exporter", choices=EXPORTERS, default="dynamo", help="exporter for graphs not in --models")
    add_profile_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..trt import TRT_VERSIONS, check_versions

    versions = list(dict.fromkeys(args.trt_version)) or list(TRT_VERSIONS)
    unknown = [v for v in versions if v not in TRT_VERSIONS]
    if unknown:
        raise UsageError(f"--trt-version must be one of {', '.join(TRT_VERSIONS)}; got {', '.join(unknown)}")
    profile = shape_profile(args)
    table = Table(title="TensorRT static check against the ONNX parser's support tables (no GPU needed)")
    for column in ("graph", "source", *(f"TensorRT {v}" for v in versions)):
        table.add_column(column)
    details: dict[str, list[str]] = {}
    checked = incompatible = 0
    for label, source, model in trt_models(args):
        try:
            reports = check_versions(model, versions, profile, name=label)
        except ValueError as err:
            raise UsageError(f"{label}: {err}") from None
        table.add_row(label, source, *(f"[{'green' if r.compatible else 'red'}]{r.verdict}[/]" for r in reports))
        checked += 1
        incompatible += not all(r.compatible for r in reports)
        for report in reports:
            for finding in report.findings:
                details.setdefault(f"{label}: {finding}", []).append(report.trt_version)
    console.print(table)
    for text, found_in in details.items():
        console.print(f"{text}  (TensorRT {', '.join(found_in)})", markup=False)
    console.print(f"{checked} graph(s) checked, {incompatible} incompatible with at least one TensorRT version")
    return 1 if incompatible else 0
