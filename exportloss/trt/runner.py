"""TensorRT engines as a verification backend (``trt``): the same harness, cases and table as onnxruntime.

:class:`EngineBackend` builds (or loads) each graph's engine and opens it as one session for
:mod:`exportloss.verify`; ``verify --backend trt --against ort-cpu`` adds the engine-vs-onnxruntime row.
fp32 engines use the catalog entry's tolerances; fp16 engines use ``atol = rtol = max(entry's, 1e-2)``,
about ten fp16 ulps at 1.0 (fp16 has an 11-bit significand, ulp(1) = 9.8e-4). Values past 65504
overflow in fp16 and fail, which is a finding about the graph, not the tolerance.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx

from ..ops.checks import check_choice
from ..backends import Backend, BackendUnavailable, SessionError
from ..catalog import GraphEntry
from ..tolerance import Tolerance
from ._cuda import CudaDriver, CudaError, TensorRTUnavailable
from .engine import DEFAULT_WORKSPACE_MIB, PRECISIONS, EngineBuildError, build_plan, require_tensorrt

FP16_TOLERANCE = 1e-2


class EngineRunner:
    """One deserialized engine with an execution context; :meth:`run` maps input arrays to output arrays."""

    def __init__(self, plan: bytes):
        self.trt = require_tensorrt()
        self.cuda = CudaDriver()
        self._runtime = self.trt.Runtime(self.trt.Logger(self.trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise EngineBuildError("TensorRT could not load the engine (built by another TensorRT version or for another GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == self.trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == self.trt.TensorIOMode.OUTPUT]
        self.stream = self.cuda.create_stream()

    def _dtype(self, name: str) -> np.dtype:
        return np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [name for name in self.inputs if name not in feeds]
        if missing:
            raise ValueError(f"the engine needs inputs {', '.join(missing)}; got {', '.join(feeds)}")
        buffers: list[int] = []
        try:
            for name in self.inputs:
                array = np.ascontiguousarray(feeds[name], dtype=self._dtype(name))
                self.context.set_input_shape(name, array.shape)
                buffers.append(self.cuda.alloc(array.nbytes))
                self.cuda.to_device(buffers[-1], array)
                self.context.set_tensor_address(name, buffers[-1])
            results = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise EngineBuildError(f"output {name!r} has a data-dependent shape {list(shape)}; this runner needs static outputs")
                results[name] = np.empty(shape, dtype=self._dtype(name))
                buffers.append(self.cuda.alloc(results[name].nbytes))
                self.context.set_tensor_address(name, buffers[-1])
            if not self.context.execute_async_v3(self.stream):
                raise EngineBuildError("TensorRT failed to enqueue the engine")
            self.cuda.synchronize(self.stream)
            for (name, array), pointer in zip(results.items(), buffers[len(self.inputs):]):
                self.cuda.to_host(array, pointer)
            return results
        finally:
            for pointer in buffers:
                self.cuda.free(pointer)

    def close(self) -> None:
        self.cuda.destroy_stream(self.stream)


class EngineSession:
    """One engine as a verification :class:`~exportloss.backends.Session`."""

    notes: tuple[str, ...] = ()

    def __init__(self, runner: EngineRunner, label: str):
        self.runner = runner
        self.label = label
        self.provider = f"TensorRT {runner.trt.__version__} on {runner.cuda.device_name}"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return self.runner.run(dict(inputs))
        except (EngineBuildError, CudaError) as err:
            raise SessionError(f"{self.provider}: {err}") from None


class EngineBackend(Backend):
    """TensorRT engines (``trt``): each graph's plan from ``engines_dir`` (``exportloss build-engine``), else built fresh.

    fp32 engines compute in float32 (TensorRT's TF32 flag cleared) unless ``tf32``; their rows say
    ``fp32`` or ``tf32`` and use the entry's tolerances. fp16 engines use ``atol = rtol = max(entry's,
    FP16_TOLERANCE)``.
    """

    name = "trt"

    def __init__(self, precision: str = "fp32", engines_dir: str | os.PathLike | None = None,
                 workspace_mib: int = DEFAULT_WORKSPACE_MIB, tf32: bool = False):
        check_choice("precision", precision, PRECISIONS)
        if tf32 and precision != "fp32":
            raise ValueError("tf32 applies to fp32 engines only")
        self.build_precision = precision
        self.precision = "tf32" if tf32 else precision
        self.engines_dir = Path(engines_dir) if engines_dir is not None else None
        self.workspace_mib = workspace_mib
        self.tf32 = tf32

    def tolerance(self, entry: GraphEntry) -> Tolerance:
        tolerance = entry.tolerance
        return tolerance if self.build_precision == "fp32" else tolerance.at_least(FP16_TOLERANCE)

    def probe(self) -> str | None:
        try:
            require_tensorrt()
        except TensorRTUnavailable as err:
            return str(err)
        return None

    @contextmanager
    def sessions(self, path: Path, model: onnx.ModelProto, entry: GraphEntry) -> Iterator[list[EngineSession]]:
        try:
            runner = EngineRunner(self._plan(model, entry))
        except TensorRTUnavailable as err:
            raise BackendUnavailable(str(err)) from None
        except EngineBuildError as err:
            raise SessionError(str(err)) from None
        try:
            yield [EngineSession(runner, f"trt-{self.precision}")]
        finally:
            runner.close()

    def _plan(self, model: onnx.ModelProto, entry: GraphEntry) -> bytes:
        if self.engines_dir is not None:
            plan = self.engines_dir / engine_file_name(entry.name, self.precision)
            if not plan.exists():
                tf32 = " --tf32" if self.tf32 else ""
                raise SessionError(f"{plan} does not exist; run `exportloss build-engine {entry.name} "
                                   f"--precision {self.build_precision}{tf32} --engines {self.engines_dir}`")
            return plan.read_bytes()
        return build_plan(model, self.build_precision, self.workspace_mib, tf32=self.tf32)


def engine_file_name(name: str, precision: str) -> str:
    """``NAME.plan`` for fp32, ``NAME.PRECISION.plan`` otherwise (``tf32``, ``fp16``)."""
    return f"{name}.plan" if precision == "fp32" else f"{name}.{precision}.plan"
