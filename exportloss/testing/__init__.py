"""Export verification for anyone's module: :func:`assert_exports`, the adversaries, the pytest plugin.

- :func:`flip_ties` rewrites every TopK/ArgMax/ArgMin of an ONNX graph to break ties towards the
  higher index (what the CUDA TopK or TensorRT may do); a backend-independent graph gives the same outputs.
- :func:`emulate_tf32` rounds every float32 MatMul/Gemm/Conv input to TF32 (what a GPU's default float32
  matmul computes), runnable on the CPU.

The catalog's own tests use these same functions. Needs the ``export`` extra.
"""

from __future__ import annotations

from .check import CheckRow, ExportReport, Failure, assert_exports, check_exports
from .tf32 import emulate_tf32, round_to_tf32
from .ties import flip_ties

__all__ = ["CheckRow", "ExportReport", "Failure", "assert_exports", "check_exports", "emulate_tf32", "flip_ties",
           "round_to_tf32"]
