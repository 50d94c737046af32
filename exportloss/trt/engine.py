"""Build TensorRT engines from ONNX graphs through the TensorRT Python API (TensorRT 10 and 11).

Data path: ONNX model -> (fp16 on TensorRT 11: :func:`exportloss.trt.fp16.to_float16`) -> ``OnnxParser``
(errors reported per node) -> builder config (workspace limit, TF32 off unless asked for, ``BuilderFlag.FP16`` for fp16
on TensorRT 10, an optimization profile when inputs are dynamic) -> serialized plan -> atomic write.

TensorRT 10 reduces precision through builder flags (weak typing). TensorRT 11 removed them: networks
are strongly typed, so fp16 means the ONNX graph itself computes in fp16. TensorRT 10 allows TF32 for
float32 layers by default (``BuilderFlag.TF32``); it is cleared unless ``tf32=True``, so an fp32 engine
computes in fp32 and verifies against the float64 reference at fp32 tolerances.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import onnx

from ..ops.checks import check_choice
from .._files import atomic_write
from ..onnx_graph import format_dims, input_dims
from ._cuda import CudaDriver, TensorRTUnavailable
from .fp16 import to_float16
from .profiles import ShapeRange, fit_profile

PRECISIONS = ("fp32", "fp16")
DEFAULT_WORKSPACE_MIB = 1024


class EngineBuildError(RuntimeError):
    """TensorRT's parser or builder rejected a graph; the message lists each parser error with its node."""


@dataclass(frozen=True)
class EngineResult:
    path: Path
    tensorrt: str
    precision: str
    seconds: float
    bytes: int


def require_tensorrt():
    """The ``tensorrt`` module, after making sure a CUDA device is there; else :class:`TensorRTUnavailable`."""
    try:
        import tensorrt
    except ImportError:
        raise TensorRTUnavailable(
            "TensorRT is not installed (pip install 'exportloss[trt]' on a machine with an NVIDIA GPU); "
            "`exportloss check-trt` checks graphs statically without it"
        ) from None
    except OSError as err:  # the wheel is there but libnvinfer cannot load
        raise TensorRTUnavailable(f"TensorRT is installed but cannot load: {str(err).splitlines()[0]}") from None
    CudaDriver()
    return tensorrt


def has_precision_flags(trt) -> bool:
    """TensorRT 10 has ``BuilderFlag.FP16``; TensorRT 11 removed it with weak typing."""
    return hasattr(trt.BuilderFlag, "FP16")


def _make_logger(trt):
    class CollectingLogger(trt.ILogger):
        """Keeps the builder's errors for the exception message; prints warnings and worse."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            errors = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR)
            if severity in errors:
                self.errors.append(msg)
            if severity in (*errors, trt.ILogger.Severity.WARNING):
                print(f"[TensorRT] {msg}", file=sys.stderr)

    return CollectingLogger()


def parser_errors(parser) -> list[str]:
    """One line per parser error: node index, name and operator, then TensorRT's description."""
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        where = f"node {error.node()} ({error.node_name() or '?'}, {error.node_operator() or '?'})" if error.node() >= 0 else "model"
        lines.append(f"{where}: {error.desc()} [{error.code()}]")
    return lines


def build_plan(
    model: onnx.ModelProto,
    precision: str = "fp32",
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    profile: Mapping[str, ShapeRange] | None = None,
    tf32: bool = False,
) -> bytes:
    """Parse and build ``model``; returns the serialized engine. Raises :class:`EngineBuildError`.

    ``tf32`` keeps TensorRT's default of TF32 for float32 matmuls and convolutions (fp32 engines only).
    """
    check_choice("precision", precision, PRECISIONS)
    if tf32 and precision != "fp32":
        raise ValueError("tf32 applies to fp32 engines only; fp16 engines compute in fp16")
    if workspace_mib < 1:
        raise ValueError(f"workspace_mib must be a positive number of MiB; got {workspace_mib}")
    profile = dict(profile or {})
    missing = fit_profile(input_dims(model), profile)
    if missing:
        dims = input_dims(model)
        raise ValueError("dynamic inputs need an optimization profile (--min-shape/--opt-shape/--max-shape): "
                         + ", ".join(f"{name} [{format_dims(dims[name])}]" for name in missing))
    trt = require_tensorrt()
    flags = has_precision_flags(trt)
    if precision == "fp16" and not flags:
        model = to_float16(model)
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    if builder is None:
        raise TensorRTUnavailable("TensorRT could not create a builder: " + "; ".join(logger.errors or ["no CUDA device"]))
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        raise EngineBuildError("TensorRT's ONNX parser rejected the graph:\n  " + "\n  ".join(parser_errors(parser)))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if hasattr(trt.BuilderFlag, "TF32") and not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    if precision == "fp16" and flags:
        config.set_flag(trt.BuilderFlag.FP16)
    if profile:
        shapes = builder.create_optimization_profile()
        for name, shape_range in profile.items():
            shapes.set_shape(name, shape_range.min, shape_range.opt, shape_range.max)
        config.add_optimization_profile(shapes)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError("TensorRT could not build the engine: " + "; ".join(logger.errors[-3:] or ["see the log above"]))
    return bytes(plan)


def build_engine(
    model: onnx.ModelProto | str | os.PathLike,
    output: str | os.PathLike,
    precision: str = "fp32",
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    profile: Mapping[str, ShapeRange] | None = None,
    tf32: bool = False,
) -> EngineResult:
    """Build ``model`` (a ModelProto or an ONNX path) and write the plan to ``output`` atomically."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    start = time.perf_counter()
    plan = build_plan(model, precision, workspace_mib, profile, tf32)
    seconds = time.perf_counter() - start
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, plan)
    import tensorrt

    return EngineResult(path, tensorrt.__version__, "tf32" if tf32 else precision, seconds, len(plan))
