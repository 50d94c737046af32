"""onnxruntime as a verification backend: one class for its CPU, CUDA and TensorRT execution providers.

onnxruntime does not fail when it cannot use a provider: it drops an unavailable one with a warning, and
its Python session retries a provider that failed to load on the CPU provider, printing an "EP Error"
block. Either way the graph runs on the CPU and a row labelled CUDA or TensorRT would be a lie. So an
:class:`OrtBackend` opens sessions with that fallback disabled and then proves what ran:

- the requested provider is in ``session.get_providers()``;
- it was given at least one node of the graph, and nodes placed elsewhere (the CUDA provider has no
  ``Atan`` kernel, so CIoU's ``Atan`` nodes run on the CPU) become a row note, read from onnxruntime's
  graph assignment record (``session.record_ep_graph_assignment_info``, onnxruntime >= 1.24);
- the provider options it asked for (``use_tf32``) are the ones the session reports.

The availability probe runs a one-node graph with onnxruntime's own log silenced, so ``verify --backend
ort-cuda`` on a machine without CUDA says one line and nothing else.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..catalog import GraphEntry
from . import Backend, BackendUnavailable, SessionError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
OPT_LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_ALL")
"""What the exporter wrote, and what onnxruntime's optimiser makes of it."""

_FATAL_ONLY = 4
_ORT_DEFAULT_SEVERITY = 2


@contextmanager
def quiet_onnxruntime() -> Iterator[None]:
    """Silence onnxruntime's own log (provider libraries that fail to load log an error before raising).

    Afterwards the default logger is back at onnxruntime's default severity, WARNING.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(_FATAL_ONLY)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Specified provider ... is not in available provider names"
            yield
    finally:
        ort.set_default_logger_severity(_ORT_DEFAULT_SEVERITY)


def _probe_model() -> bytes:
    """``y = x + x`` on float32[4]: the smallest graph every provider runs."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "probe", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


class OrtSession:
    """One onnxruntime session at one optimisation level, proven to run on the requested provider."""

    def __init__(self, session, provider: str, label: str, notes: tuple[str, ...]):
        self._session = session
        self.provider = provider
        self.label = label
        self.notes = notes
        self._outputs = [o.name for o in session.get_outputs()]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(self._outputs, self._session.run(self._outputs, dict(inputs))))
        except Exception as err:  # a kernel that fails at run time (a CUDA error, say) fails the row, not the command
            raise SessionError(f"{self.provider} failed to run the graph ({self.label}): {_first_line(err)}") from None


class OrtBackend(Backend):
    """onnxruntime on ``providers`` (the first is the one verified; later ones take what it cannot run).

    Args:
        name: the row's backend name.
        providers: execution providers in onnxruntime's order of precedence.
        provider_options: options per provider, e.g. ``{"CUDAExecutionProvider": {"use_tf32": "0"}}``.
        precision: what the rows mean (``fp32`` or ``tf32``).
        levels: graph optimisation levels; each opens one session and every case runs on each.
    """

    def __init__(self, name: str, providers: Sequence[str], provider_options: Mapping[str, Mapping[str, str]] | None = None,
                 precision: str = "fp32", levels: Sequence[str] = OPT_LEVELS):
        self.name = name
        self.providers = tuple(providers)
        self.provider_options = {p: dict((provider_options or {}).get(p, {})) for p in self.providers}
        self.precision = precision
        self.levels = tuple(levels)

    @classmethod
    def cpu(cls) -> OrtBackend:
        return cls("ort-cpu", [CPU])

    @classmethod
    def cuda(cls, tf32: bool = False) -> OrtBackend:
        """The CUDA provider; float32 MatMul/Gemm/Conv in float32 unless ``tf32`` (the provider's default)."""
        return cls("ort-cuda", [CUDA], {} if tf32 else {CUDA: {"use_tf32": "0"}}, "tf32" if tf32 else "fp32")

    @classmethod
    def tensorrt(cls) -> OrtBackend:
        """The TensorRT provider (CUDA takes what TensorRT cannot). TensorRT allows TF32 for float32 layers."""
        return cls("ort-trt", [TENSORRT, CUDA], precision="tf32")

    @property
    def requested(self) -> str:
        return self.providers[0]

    def __repr__(self) -> str:
        return f"OrtBackend({self.name!r}, {list(self.providers)}, {self.provider_options}, {self.precision!r})"

    def probe(self) -> str | None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        missing = [p for p in self.providers if p not in available]
        if missing:
            tensorrt = " and TensorRT" if TENSORRT in missing else ""
            return (f"onnxruntime {ort.__version__} here has no {' or '.join(missing)} "
                    f"(install onnxruntime-gpu{tensorrt} on a machine with an NVIDIA GPU)")
        try:
            session = self._open(_probe_model(), self.levels[-1])
            x = np.arange(4, dtype=np.float32)
            if not np.array_equal(session.run({"x": x})["y"], x + x):
                return f"{self.requested} computed 2 * [0, 1, 2, 3] wrongly"
        except SessionError as err:
            return f"{self.requested} does not load: {err}"
        except BackendUnavailable as err:
            return str(err)
        return None

    def _open(self, source: str | bytes, level: str) -> OrtSession:
        """A session on ``source`` (a path or model bytes) that provably runs on :attr:`requested`."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        options.log_severity_level = _FATAL_ONLY
        options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        try:
            with quiet_onnxruntime():
                session = ort.InferenceSession(source, options, providers=list(self.providers),
                                               provider_options=[self.provider_options[p] for p in self.providers],
                                               enable_fallback=0)
        except Exception as err:  # onnxruntime raises bare RuntimeErrors (Fail, EPFail, ...) for any failure
            raise SessionError(_first_line(err)) from None
        return OrtSession(session, self.requested, level, self._prove_placement(session))

    def _prove_placement(self, session) -> tuple[str, ...]:
        """Raise :class:`BackendUnavailable` unless :attr:`requested` ran the graph; notes on nodes placed elsewhere."""
        used = session.get_providers()
        if self.requested not in used:
            raise BackendUnavailable(f"onnxruntime replaced {self.requested} with {', '.join(used)}")
        reported = session.get_provider_options()
        for provider, options in self.provider_options.items():
            for key, value in options.items():
                actual = reported.get(provider, {}).get(key)
                if actual != value:
                    raise BackendUnavailable(f"{provider} reports {key}={actual}, not the requested {value}")
        if not hasattr(session, "get_provider_graph_assignment_info"):  # onnxruntime before the assignment record
            return () if self.providers == (CPU,) else ("node placement not checked: this onnxruntime has no graph assignment record",)
        ops: dict[str, Counter[str]] = defaultdict(Counter)
        for subgraph in session.get_provider_graph_assignment_info():
            ops[subgraph.ep_name].update(node.op_type for node in subgraph.get_nodes())
        if not ops[self.requested]:
            raise BackendUnavailable(f"onnxruntime assigned no node of the graph to {self.requested}")
        return tuple(
            f"{sum(counts.values())} node(s) placed on {provider}: " + ", ".join(f"{op} x{n}" for op, n in sorted(counts.items()))
            for provider, counts in ops.items() if provider != self.requested and counts
        )

    @contextmanager
    def sessions(self, path: Path, model: onnx.ModelProto, entry: GraphEntry) -> Iterator[list[OrtSession]]:
        try:
            data = model.SerializeToString()  # the model load_model checked, not the file, which may have changed since
            opened = [self._open(data, level) for level in self.levels]
        except SessionError as err:
            raise SessionError(f"onnxruntime could not open the graph on {self.requested}: {err}") from None
        yield opened


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__

