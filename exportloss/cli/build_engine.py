"""``exportloss build-engine``: TensorRT engines (needs tensorrt and a CUDA device)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (UsageError, add_engine_arguments, add_profile_arguments, check_tf32, console, shape_profile,
                     trt_models)


def add_parser(sub) -> None:
    from ..export import EXPORTERS

    p = sub.add_parser("build-engine", help="build TensorRT engines (needs tensorrt and a CUDA device)")
    p.add_argument("names", nargs="*", metavar="NAME|PATH.onnx")
    p.add_argument("--all", action="store_true", help="every catalog graph")
    p.add_argument("-o", "--output", help="plan file (one graph only; default: --engines/NAME.plan)")
    p.add_argument("--engines", default="models", help="directory for plans (default: models)")
    p.add_argument("--models", default="models", help="NAME is read from here as NAME.onnx, else exported (default: models)")
    p.add_argument("--exporter", choices=EXPORTERS, default="dynamo", help="exporter for graphs not in --models")
    add_profile_arguments(p)
    add_engine_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..trt.engine import EngineBuildError, TensorRTUnavailable, build_engine, has_precision_flags, require_tensorrt
    from ..trt.runner import engine_file_name

    check_tf32(args)
    try:
        trt = require_tensorrt()
    except TensorRTUnavailable as err:
        raise UsageError(str(err)) from None
    profile = shape_profile(args)
    models = list(trt_models(args))
    if args.output and len(models) > 1:
        raise UsageError("-o/--output names one plan; with several graphs, plans go to --engines DIR")
    if args.precision == "fp16" and not has_precision_flags(trt):
        check_float16(models)
    failed = 0
    for label, _, model in models:
        plan_precision = "tf32" if args.tf32 else args.precision
        output = Path(args.output) if args.output else Path(args.engines) / engine_file_name(Path(label).stem, plan_precision)
        try:
            result = build_engine(model, output, args.precision, args.workspace, profile, args.tf32)
        except ValueError as err:
            raise UsageError(f"{label}: {err}") from None
        except EngineBuildError as err:
            console.print(f"{label}: {err}", markup=False)
            failed += 1
            continue
        console.print(f"built {label:<24} -> {result.path}  (TensorRT {result.tensorrt}, {result.precision}, "
                      f"{result.seconds:.1f} s, {result.bytes / 1e6:.1f} MB)")
    return 1 if failed else 0


def check_float16(models) -> None:
    """TensorRT 11 builds fp16 from an fp16 graph (:func:`exportloss.trt.fp16.to_float16`): every graph is
    rewritten before the first engine is built, and one the rewrite refuses stops the run with its reason."""
    from ..trt.fp16 import Float16Refused, to_float16

    for label, _, model in models:
        try:
            to_float16(model)
        except Float16Refused as err:
            raise UsageError(f"{label}: --precision fp16: {err.reason}") from None
