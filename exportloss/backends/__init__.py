"""Where a graph runs during verification: the :class:`Backend` interface and the backends by name.

A backend is a value: a ``name`` (``ort-cpu``, ``ort-cuda``, ``ort-trt``, ``trt``), the ``precision`` its
rows mean, the :class:`Tolerance` it holds a catalog entry to, a :meth:`Backend.unavailable_reason`
probe that proves it truly loads here, and the :class:`Session` objects it opens for one model. The
harness (:mod:`exportloss.verify`) knows nothing else about runtimes, so adding one (OpenVINO,
onnxruntime CUDA at fp16) is one :class:`Backend` subclass in one file plus its name in
:func:`make_backend`.

A backend never claims a run it did not make: a session that does not run the graph on what the backend
asked for raises :class:`BackendUnavailable`, and the row reads ``unavailable: <reason>``, never PASS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import numpy as np
import onnx

from ..catalog import GraphEntry
from ..tolerance import Tolerance

BACKEND_NAMES = ("ort-cpu", "ort-cuda", "ort-trt", "trt")
"""Every backend ``exportloss verify`` knows, in the order of its default run."""


class BackendUnavailable(RuntimeError):
    """The backend cannot run here, or did not run the graph on what it asked for; ``str`` is one line."""


class SessionError(RuntimeError):
    """The backend is here but could not open this graph (a TensorRT parser error, for example)."""


class Session(Protocol):
    """One way a backend runs one model; a backend may open several (onnxruntime optimisation levels)."""

    label: str
    """Where in the row a failure happened, e.g. ``ORT_ENABLE_ALL`` or ``trt-fp32``."""
    provider: str
    """What actually ran the graph, e.g. ``CUDAExecutionProvider`` or ``TensorRT 10.15.1``."""
    notes: tuple[str, ...]
    """What the row should say beyond its numbers, e.g. nodes that ran on another provider."""

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of the model by name."""


class Backend(ABC):
    """A runtime the harness verifies graphs on; see the module docstring."""

    name: str
    precision: str
    """What the rows mean: ``fp32`` (float32 arithmetic), ``tf32`` (float32 matmuls in TF32) or ``fp16``."""

    def tolerance(self, entry: GraphEntry) -> Tolerance:
        """The tolerance ``entry`` is held to on this backend; the entry's own unless overridden."""
        return entry.tolerance

    def unavailable_reason(self) -> str | None:
        """None when the backend truly loads here, else one line saying why not; probed once per backend value."""
        if not hasattr(self, "_probed"):
            self._probed = self.probe()
        return self._probed

    @abstractmethod
    def probe(self) -> str | None:
        """Load the runtime (quietly: no log of its own on stderr); None when it works, else why not, in one line."""

    @abstractmethod
    def sessions(self, path: Path, model: onnx.ModelProto, entry: GraphEntry) -> AbstractContextManager[list[Session]]:
        """Open the sessions for one model (file ``path``, loaded as ``model``), closing them on exit.

        Raises :class:`BackendUnavailable` when the runtime did not take the graph (a silent fallback
        included) and :class:`SessionError` when it rejected the graph.
        """


def make_backend(name: str, *, tf32: bool = False, precision: str = "fp32",
                 engines_dir: str | Path | None = None, workspace_mib: int | None = None) -> Backend:
    """The backend called ``name`` (one of :data:`BACKEND_NAMES`, or ``ort`` for ``ort-cpu``).

    ``tf32`` lets GPU backends run float32 matmuls in TF32 (the providers' own default); without it they
    compute in float32. ``precision``, ``engines_dir`` and ``workspace_mib`` apply to TensorRT engines.
    """
    from .ort import OrtBackend

    if name in ("ort-cpu", "ort"):
        return OrtBackend.cpu()
    if name == "ort-cuda":
        return OrtBackend.cuda(tf32=tf32)
    if name == "ort-trt":
        return OrtBackend.tensorrt()
    if name == "trt":
        from ..trt.runner import EngineBackend

        options = {} if workspace_mib is None else {"workspace_mib": workspace_mib}
        return EngineBackend(precision, engines_dir, tf32=tf32, **options)
    raise ValueError(f"backend must be one of {', '.join(BACKEND_NAMES)}; got {name!r}")


def split_available(backends: list[Backend]) -> tuple[list[Backend], dict[str, str]]:
    """``(backends that load here, {name: reason} of those that do not)``."""
    reasons = {backend.name: backend.unavailable_reason() for backend in backends}
    return [b for b in backends if reasons[b.name] is None], {n: r for n, r in reasons.items() if r is not None}


__all__ = [
    "BACKEND_NAMES", "Backend", "BackendUnavailable", "Session", "SessionError", "Tolerance", "make_backend",
    "split_available",
]
