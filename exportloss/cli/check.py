"""``exportloss check MODULE:FACTORY --input NAME=SHAPE[:DTYPE] ...``: verify the export of your own module.

``FACTORY`` is a callable in ``MODULE`` (an importable module, or a ``path/to/file.py``) that returns the
``nn.Module``; one ``--input`` per ``forward`` argument, in order, draws the example inputs (seed 0).
The logic is :func:`exportloss.testing.check_exports`; this prints its table. Exit 0 when every check
passed or was skipped, 1 when one failed, 2 for arguments it cannot use (a FACTORY that cannot be
imported or called, an input spec it cannot read, a backend named with ``--backend`` that cannot run here).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

from ..catalog import EXAMPLE_SEED, VERIFICATION_SEED
from .common import UsageError, console, non_negative_int, positive_int

DTYPES = ("float32", "float16", "float64", "int64", "int32", "bool")
DEFAULT_RANGES = {"float": (0.0, 1.0), "int": (0, 9)}
"""Where example values come from without ``:LOW..HIGH``: floats uniform in [0, 1), integers in [0, 9]."""


def add_parser(sub) -> None:
    from ..backends import BACKEND_NAMES
    from ..export import EXPORTERS

    p = sub.add_parser("check", help="export your own module (MODULE:FACTORY) and verify the graph: fresh inputs, "
                                     "tie order, TF32, TensorRT's parser, the CUDA provider's kernels")
    p.add_argument("factory", metavar="MODULE:FACTORY",
                   help="an importable module (or path/to/file.py) and the callable in it that returns the nn.Module")
    p.add_argument("--input", action="append", default=[], metavar="NAME=SHAPE[:DTYPE][:LOW..HIGH]",
                   help="one per forward() argument, in order, e.g. pred=256x4, labels=256:int64:0..79, mask=64x64:bool; "
                        f"dtypes {', '.join(DTYPES)} (default float32); values uniform in [0, 1) for floats, "
                        "[0, 9] for integers, or LOW..HIGH (integer bounds on a float input draw integer values)")
    p.add_argument("--exporter", action="append", default=[], choices=EXPORTERS, help="repeatable (default: dynamo)")
    p.add_argument("--backend", action="append", default=[], choices=(*BACKEND_NAMES, "ort"), metavar="BACKEND",
                   help="ort-cpu (alias ort), ort-cuda, ort-trt or trt; repeatable (default: ort-cpu)")
    p.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (default: 1e-5)")
    p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance (default: 1e-5)")
    p.add_argument("--opset", type=positive_int, help="ONNX opset (default: 18)")
    p.add_argument("--seed", type=non_negative_int, default=VERIFICATION_SEED,
                   help=f"seed of the fresh inputs (default: {VERIFICATION_SEED})")
    for name, what in (("ties", "the tie-order adversary"), ("tf32", "the TF32 adversary"),
                       ("trt", "the static TensorRT check"), ("ort-cuda", "the static CUDA-provider check")):
        p.add_argument(f"--no-{name}", action="store_true", help=f"skip {what}")
    p.set_defaults(func=run)


def parse_input(text: str) -> tuple[str, tuple[int, ...], str, tuple[float, float] | None]:
    """``"labels=256:int64:0..79"`` -> ``("labels", (256,), "int64", (0, 79))``."""
    name, sep, spec = text.partition("=")
    shape_text, _, rest = spec.partition(":")
    dtype, _, bounds = rest.partition(":")
    if not dtype and ".." in shape_text:
        raise UsageError(f"--input {text}: give the dtype before the range, like x=3x4:float32:-1..1")
    dtype = dtype or "float32"
    try:
        shape = tuple(int(d) for d in shape_text.lower().split("x")) if shape_text else ()
        low_text, dots, high_text = bounds.partition("..")
        value_range = (_number(low_text), _number(high_text)) if dots else None
    except ValueError:
        shape, value_range = None, None
    if not sep or not name or shape is None or any(d < 1 for d in shape) or (bounds and value_range is None):
        raise UsageError(f"--input expects NAME=SHAPE[:DTYPE][:LOW..HIGH] like pred=256x4 or labels=256:int64:0..79; got {text!r}")
    if dtype not in DTYPES:
        raise UsageError(f"--input {text}: dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if value_range is not None and value_range[0] > value_range[1]:
        raise UsageError(f"--input {text}: LOW must not exceed HIGH")
    return name, shape, dtype, value_range


def _number(text: str) -> float:
    return int(text) if text.lstrip("+-").isdigit() else float(text)


def example_input(shape: tuple[int, ...], dtype: str, value_range, rng: np.random.Generator) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    kind = "float" if dtype.startswith("float") else "int"
    low, high = value_range or DEFAULT_RANGES[kind]
    if kind == "int" or (value_range is not None and all(isinstance(bound, int) for bound in (low, high))):
        return rng.integers(int(low), int(high), size=shape, endpoint=True).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)


def load_factory(spec: str):
    """The callable ``FACTORY`` of ``MODULE:FACTORY`` (a dotted module, imported with the working directory on
    the path, or a ``.py`` file)."""
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"expected MODULE:FACTORY, like my_losses:make_loss or losses.py:make_loss; got {spec!r}")
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise UsageError(f"{module_name}: no such file")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except Exception as err:  # the user's module: its error in one line
        raise UsageError(f"{spec}: cannot import {module_name}: {type(err).__name__}: {_first_line(err)}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise UsageError(f"{spec}: {module_name} has no callable {attribute!r}")
    return factory


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def run(args: argparse.Namespace) -> int:
    import torch

    from ..backends import make_backend
    from ..testing import check_exports
    from ..testing.check import input_names

    if not args.input:
        raise UsageError("give one --input NAME=SHAPE[:DTYPE] per forward() argument")
    specs = [parse_input(text) for text in args.input]
    factory = load_factory(args.factory)
    try:
        module = factory()
    except Exception as err:  # the user's code
        raise UsageError(f"{args.factory}: calling it failed: {type(err).__name__}: {_first_line(err)}") from None
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"{args.factory} returned {type(module).__name__}, not a torch.nn.Module")
    given = [name for name, *_ in specs]
    expected = input_names(module, len(specs))
    if given != expected and not all(name.startswith("input_") for name in expected):
        raise UsageError(f"--input names {', '.join(given)}: {type(module).__name__}.forward takes {', '.join(expected)} "
                         f"(give the inputs in that order)")
    rng = np.random.default_rng(EXAMPLE_SEED)
    example = tuple(torch.from_numpy(example_input(shape, dtype, value_range, rng)) for _, shape, dtype, value_range in specs)
    backends = [make_backend("ort-cpu" if name == "ort" else name) for name in dict.fromkeys(args.backend)] or ["ort-cpu"]
    for backend in backends:
        if not isinstance(backend, str) and backend.unavailable_reason() is not None:
            raise UsageError(f"backend {backend.name} is unavailable: {backend.unavailable_reason()}")
    adversaries = tuple(name for name in ("ties", "tf32") if not getattr(args, f"no_{name}"))
    try:
        report = check_exports(module, example, exporters=tuple(dict.fromkeys(args.exporter)) or ("dynamo",),
                               backends=backends, rtol=args.rtol, atol=args.atol, adversaries=adversaries,
                               check_trt=not args.no_trt, check_ort_cuda=not args.no_ort_cuda, opset=args.opset,
                               seed=args.seed)
    except (ValueError, TypeError) as err:
        raise UsageError(f"{args.factory}: {err}") from None
    console.print(report.table(), markup=False, highlight=False, soft_wrap=True)
    if not report.passed:
        console.print(report.message(), markup=False, highlight=False, soft_wrap=True)
    failed = sum(not row.passed and row.unavailable is None for row in report.rows)
    console.print(f"{report.module}: {len(report.rows) - failed - len(report.skipped)} check(s) passed, {failed} failed, "
                  f"{len(report.skipped)} skipped", markup=False)
    return 1 if failed else 0
