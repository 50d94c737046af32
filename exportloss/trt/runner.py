"""Run TensorRT engines and verify them like onnxruntime: same fresh cases, same table.

``verify --backend trt`` builds (or loads) each graph's engine, runs it on the cases
:mod:`exportloss.verify` uses, and yields two rows per graph: the engine against the float64 eager
reference, and the engine against onnxruntime (CPU, ``ORT_ENABLE_ALL``) on the same inputs. fp32
engines use the catalog entry's tolerances; fp16 engines use ``atol = rtol = max(entry's, 1e-2)``,
about ten fp16 ulps at 1.0 (fp16 has an 11-bit significand, ulp(1) = 9.8e-4). Values past 65504
overflow in fp16 and fail, which is a finding about the graph, not the tolerance.

``verify --backend ort-trt`` runs onnxruntime's TensorRT execution provider instead (onnxruntime-gpu).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

from .. import catalog
from ..catalog import GraphEntry
from ..verify import VerifyRow, compare, for_each_graph, graph_name, input_shapes, reference_outputs, verify_model
from ._cuda import CudaDriver, TensorRTUnavailable
from .engine import DEFAULT_WORKSPACE_MIB, EngineBuildError, build_engine, require_tensorrt

FP16_TOLERANCE = 1e-2
ORT_TRT_PROVIDER = "TensorrtExecutionProvider"


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


def tolerances_for(entry: GraphEntry, precision: str) -> GraphEntry:
    """``entry`` with the tolerances an engine of ``precision`` is held to."""
    if precision == "fp32":
        return entry
    return dataclasses.replace(entry, atol=max(entry.atol, FP16_TOLERANCE), rtol=max(entry.rtol, FP16_TOLERANCE))


def _onnxruntime_outputs(path: Path, entry: GraphEntry, cases) -> list[list[np.ndarray]]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run(list(entry.outputs), case.inputs) for case in cases]


def verify_engine(
    path: str | os.PathLike,
    seed: int = 20261128,
    entry: GraphEntry | None = None,
    precision: str = "fp32",
    engine: str | os.PathLike | None = None,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
) -> list[VerifyRow]:
    """Verify the engine of one ONNX file: rows ``trt-PRECISION`` (vs reference) and ``trt-PRECISION~ort``.

    ``engine`` is a plan built earlier (``exportloss build-engine``); without it one is built into a
    temporary directory. A graph TensorRT rejects gives one failed row naming the parser's errors.
    """
    path = Path(path)
    model = onnx.load(str(path))
    entry = entry or catalog.get(graph_name(model, path))
    backend = f"trt-{precision}"
    try:
        runner = EngineRunner(_plan(model, precision, engine, workspace_mib))
    except EngineBuildError as err:
        return [VerifyRow(entry.name, backend, failures=[str(err)])]
    try:
        cases = entry.verification_cases(input_shapes(model), seed=seed)
        module = entry.build().eval()
        held_to = tolerances_for(entry, precision)
        against_reference = VerifyRow(entry.name, backend, failures=[])
        against_ort = VerifyRow(entry.name, f"{backend}~ort", failures=[])
        for case, ort_outputs in zip(cases, _onnxruntime_outputs(path, entry, cases)):
            outputs = runner.run(case.inputs)
            got = [outputs[name] for name in entry.outputs]
            compare(held_to, against_reference, case, backend, got, reference_outputs(entry, module, case.inputs))
            compare(held_to, against_ort, case, backend, got, ort_outputs)
    finally:
        runner.close()
    return [against_reference, against_ort]


def _plan(model: onnx.ModelProto, precision: str, engine: str | os.PathLike | None, workspace_mib: int) -> bytes:
    if engine is not None:
        return Path(engine).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        return build_engine(model, Path(tmp) / "engine.plan", precision, workspace_mib).path.read_bytes()


def verify_engines(
    entries: Sequence[GraphEntry],
    models_dir: str | os.PathLike = "models",
    seed: int = 20261128,
    on_row: Callable[[VerifyRow], None] | None = None,
    precision: str = "fp32",
    engines_dir: str | os.PathLike | None = None,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
) -> list[VerifyRow]:
    """:func:`verify_engine` for catalog graphs in ``models_dir``, with plans from ``engines_dir`` when given."""

    def one(entry: GraphEntry, path: Path) -> list[VerifyRow]:
        engine = Path(engines_dir) / engine_file_name(entry.name, precision) if engines_dir else None
        if engine is not None and not engine.exists():
            return [VerifyRow(entry.name, f"trt-{precision}", failures=[f"{engine} does not exist; run `exportloss build-engine {entry.name}`"])]
        return verify_engine(path, seed, entry, precision, engine, workspace_mib)

    return for_each_graph(entries, models_dir, one, on_row)


def verify_ort_trt(
    path: str | os.PathLike, seed: int = 20261128, entry: GraphEntry | None = None,
) -> list[VerifyRow]:
    """Verify one ONNX file on onnxruntime's TensorRT execution provider (needs onnxruntime-gpu)."""
    require_ort_trt()
    return verify_model(path, seed=seed, providers=[ORT_TRT_PROVIDER], entry=entry)


def verify_ort_trt_graphs(
    entries: Sequence[GraphEntry],
    models_dir: str | os.PathLike = "models",
    seed: int = 20261128,
    on_row: Callable[[VerifyRow], None] | None = None,
) -> list[VerifyRow]:
    return for_each_graph(entries, models_dir, lambda entry, path: verify_ort_trt(path, seed, entry), on_row)


def require_ort_trt() -> None:
    import onnxruntime as ort

    if ORT_TRT_PROVIDER not in ort.get_available_providers():
        raise TensorRTUnavailable(
            f"onnxruntime {ort.__version__} has no {ORT_TRT_PROVIDER} "
            "(install onnxruntime-gpu and TensorRT on a machine with an NVIDIA GPU)"
        )


def engine_file_name(name: str, precision: str) -> str:
    """``NAME.plan`` for fp32, ``NAME.fp16.plan`` for fp16."""
    return f"{name}.plan" if precision == "fp32" else f"{name}.{precision}.plan"
