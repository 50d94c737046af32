"""Export verification for anyone's module: :func:`assert_exports`, the adversaries, the pytest plugin.

- :func:`assert_exports` exports a module and verifies the graph as deployment will run it (see
  :mod:`exportloss.testing.check`); :func:`check_exports` returns the :class:`ExportReport` without raising.
- :func:`flip_ties` rewrites every TopK/ArgMax/ArgMin of an ONNX graph to break ties towards the
  higher index (what the CUDA TopK or TensorRT may do); a backend-independent graph gives the same outputs.
- :func:`emulate_tf32` rounds every float32 MatMul/Gemm/Conv input to TF32 (what a GPU's default float32
  matmul computes), runnable on the CPU.
- :mod:`exportloss.testing.pytest_plugin`: the ``exportloss_check`` fixture, registered by the ``export`` extra.

The catalog's own tests use these same functions. Needs the ``export`` extra; the names load on first use,
so the pytest plugin costs nothing until a test asks for the fixture.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "assert_exports": "check", "check_exports": "check", "ExportReport": "check", "CheckRow": "check",
    "Failure": "check", "emulate_tf32": "tf32", "round_to_tf32": "tf32", "flip_ties": "ties",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
