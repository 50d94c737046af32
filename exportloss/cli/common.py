"""What the commands share: the console, usage errors, argument types, graph selection, TensorRT options."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from rich.console import Console

from .. import catalog
from ..catalog import GraphEntry, UnknownGraphError

T = TypeVar("T")

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 2, 3, 130
"""Exit statuses besides 0 (success) and 1 (a check or verification failed), which commands return themselves;
130 = 128 + SIGINT, the shells' status for a command stopped by Ctrl-C."""


class UsageError(Exception):
    """A mistake in the command line, reported as one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (naming the argument) instead of the usage text plus a line."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (`{self.prog} --help` shows the usage)\n")


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {value}")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a positive integer; got 0")
    return value


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``"boxes1=2x100x4"`` -> ``("boxes1", (2, 100, 4))``."""
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) < 1:
        raise UsageError(f"--shape expects INPUT=D1xD2x... with positive integers, like boxes1=2x100x4; got {text!r}")
    return name, shape


def selected_entries(args: argparse.Namespace) -> list[GraphEntry]:
    if not args.names and not args.all:
        raise UsageError("name one or more graphs, or pass --all (`exportloss list` shows the catalog)")
    try:
        return catalog.resolve(args.names, args.all)
    except UnknownGraphError as err:
        raise UsageError(str(err)) from None


def parse_size(text: str) -> tuple[str, int]:
    """``"classes=10000"`` -> ``("classes", 10000)``; ASCII digits only (``str.isdigit`` also takes ``²``)."""
    name, sep, value = text.partition("=")
    if not sep or not name or not re.fullmatch(r"[0-9]+", value):
        raise UsageError(f"--size expects NAME=N with a non-negative integer, like classes=10000; got {text!r}")
    return name, int(value)


def unique_arguments(option: str, pairs: Iterable[tuple[str, T]], show: Callable[[T], str] = str) -> dict[str, T]:
    """``dict(pairs)``, refusing one name given two different values (``--size classes=10 --size classes=20``):
    a contradiction on the command line is an error, never "the last one wins"."""
    values: dict[str, T] = {}
    for name, value in pairs:
        if name in values and values[name] != value:
            raise UsageError(f"{option} {name} given twice with different values ({option} {name}={show(values[name])} "
                             f"and {option} {name}={show(value)}); give it once")
        values[name] = value
    return values


def output_directory(text: str) -> Path:
    """``-o DIR``: a non-empty path (an empty one would silently mean the current directory)."""
    if not text.strip():
        raise UsageError(f"-o: expected a directory; got {text!r} (the default is models)")
    return Path(text)



def shape_profile(args: argparse.Namespace):
    """The optimization profile from ``--min-shape/--opt-shape/--max-shape``."""
    from ..trt import make_profile

    try:
        return make_profile(*(dict(parse_shape(s) for s in getattr(args, f"{bound}_shape")) for bound in ("min", "opt", "max")))
    except ValueError as err:
        raise UsageError(str(err)) from None


def trt_models(args: argparse.Namespace):
    """``(label, source, model)`` per PATH.onnx, and per NAME: ``--models/NAME.onnx``, else exported in memory."""
    from ..export import export_model
    from ..model_files import load_model

    paths = [Path(n) for n in args.names if n.endswith(".onnx")]
    args.names = [n for n in args.names if not n.endswith(".onnx")]
    entries = selected_entries(args) if args.names or args.all or not paths else []
    # Every file is validated before the first is checked: a bad one fails the run at once.
    models = [(str(path), "file", load_model(path, catalog_graph=False)[0]) for path in paths]
    yield from models
    for entry in entries:
        file = Path(args.models) / f"{entry.name}.onnx"
        if file.exists():
            yield entry.name, str(file), load_model(file, entry)[0]
        else:
            yield entry.name, f"exported ({args.exporter})", export_model(entry, args.exporter)



def add_profile_arguments(p: argparse.ArgumentParser) -> None:
    for bound in ("min", "opt", "max"):
        p.add_argument(f"--{bound}-shape", action="append", default=[], metavar="INPUT=D1xD2...",
                       help=f"{bound} shape of a dynamic input in the optimization profile")


def check_tf32(args: argparse.Namespace) -> None:
    if args.tf32 and args.precision != "fp32":
        raise UsageError("--tf32 applies to fp32 only; --precision fp16 computes in fp16")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="TensorRT engine precision (default: fp32)")
    p.add_argument("--workspace", type=positive_int, default=1024, metavar="MiB", help="builder workspace limit (default: 1024)")
    p.add_argument("--tf32", action="store_true",
                   help="allow TF32 for float32 matmuls on GPUs (the providers' default); without it ort-cuda and fp32 engines compute in float32")

