"""TF32 matrix products for ``onnx.reference.ReferenceEvaluator``: what a GPU backend's default float32 MatMul does.

onnxruntime's CUDA provider (``use_tf32``, on by default) and TensorRT (TF32 allowed by default) run
float32 MatMul/Gemm on tensor cores in TF32: each input is rounded to 10 explicit mantissa bits
(11 significant bits, round to nearest even) and the products are accumulated in float32. The
evaluator here rounds both inputs the same way and accumulates in float64 (an accumulation at least
as exact as the hardware's), so any difference from the plain evaluator comes from the rounded inputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

TF32_DROPPED_BITS = 13
"""float32 has 23 explicit mantissa bits, TF32 keeps 10."""


def round_to_tf32(x: np.ndarray) -> np.ndarray:
    """float32 ``x`` rounded to TF32 (round to nearest, ties to even); non-finite values unchanged."""
    if x.dtype != np.float32:
        return x
    bits = np.ascontiguousarray(x).view(np.uint32).astype(np.uint64)
    half = (1 << (TF32_DROPPED_BITS - 1)) - 1
    odd = (bits >> TF32_DROPPED_BITS) & 1
    rounded = ((bits + half + odd) >> TF32_DROPPED_BITS) << TF32_DROPPED_BITS
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isfinite(x), out, x)


def _tf32_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    product = np.matmul(round_to_tf32(a).astype(np.float64), round_to_tf32(b).astype(np.float64))
    return product.astype(np.result_type(a, b))


class MatMul(OpRun):  # the class name selects the operator it overrides
    op_domain = ""

    def _run(self, a, b):
        return (_tf32_matmul(a, b),)


class Gemm(OpRun):
    op_domain = ""

    def _run(self, a, b, c=None, alpha=None, beta=None, transA=None, transB=None):
        a = a.T if transA else a
        b = b.T if transB else b
        out = (alpha if alpha is not None else 1.0) * _tf32_matmul(a, b)
        if c is not None:
            out = out + (beta if beta is not None else 1.0) * c
        return (out.astype(a.dtype),)


class GatherElements(OpRun):
    """The specification's GatherElements; onnx's own reference implementation fails for axes longer than 64."""

    op_domain = ""

    def _run(self, data, indices, axis=None):
        axis = axis or 0
        return (np.take_along_axis(data, np.where(indices < 0, indices + data.shape[axis], indices), axis=axis),)


def evaluator(model: onnx.ModelProto, tf32: bool) -> ReferenceEvaluator:
    """The reference evaluator of ``model``, with TF32 MatMul/Gemm when ``tf32``."""
    return ReferenceEvaluator(model, new_ops=[GatherElements, MatMul, Gemm] if tf32 else [GatherElements])
