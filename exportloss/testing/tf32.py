"""TF32 emulation of ONNX graphs: what a GPU backend's default float32 MatMul, Gemm and Conv compute.

onnxruntime's CUDA provider (``use_tf32``, on by default) and TensorRT (TF32 allowed by default) run
float32 MatMul/Gemm/Conv on tensor cores in TF32: each input is rounded to 10 explicit mantissa bits
(11 significant bits, round to nearest even) and the products are accumulated in float32.
:func:`emulate_tf32` builds that graph for any runtime: every float32 A/B input of a MatMul or Gemm (X/W
of a Conv) first goes through :func:`tf32_rounding_nodes`, which rounds it exactly as the tensor cores
do, and the node itself is unchanged. Run the original and the emulation on the same runtime (the same
kernel, the same accumulation order) and any difference comes from the rounded inputs alone.

The rounding in ONNX operators (no bit casts before opset 26): with ``a = |x|`` and ``e = floor(log2 a)``
(from ``Log``, corrected by one either way with exact powers of two; ``a`` raised to 2^-126 first, so
that subnormals round on float32's fixed subnormal grid), ``x`` rounds to ``Round(x / 2^(e-10)) · 2^(e-10)``;
``Round`` rounds half to even, every other step is exact. NaN and infinity pass unchanged; a value
that rounds past the largest float32 becomes infinity, as on the hardware. :func:`round_to_tf32` is
the same rounding on the float32 bits, the specification the graph is tested against.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from .ties import inferred_copy, reject_subgraphs, with_nodes

TF32_DROPPED_BITS = 13
"""float32 has 23 explicit mantissa bits, TF32 keeps 10."""
TF32_OPS = {"MatMul": (0, 1), "Gemm": (0, 1), "Conv": (0, 1)}
"""The operators that run on tensor cores in TF32, and which of their inputs are rounded (not Gemm's C or a bias)."""
_MIN_NORMAL_EXPONENT = -126


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


def tf32_rounding_nodes(x: str, y: str, prefix: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes computing float32 ``y`` = float32 ``x`` rounded to TF32 (module docstring), and their constants."""
    constants = {
        "zero": np.float32(0.0), "ln2": np.float32(np.log(2.0)), "two": np.float32(2.0),
        "min_normal": np.float32(2.0**_MIN_NORMAL_EXPONENT), "kept_bits": np.float32(23 - TF32_DROPPED_BITS),
    }
    initializers = [numpy_helper.from_array(np.array(value), f"{prefix}_{name}") for name, value in constants.items()]
    c = {name: f"{prefix}_{name}" for name in constants}
    steps = [  # (op, inputs, output[, attributes]); other names are this function's temporaries
        ("IsNaN", [x], "nan"),
        ("IsInf", [x], "inf"),
        ("Or", ["nan", "inf"], "non_finite"),
        ("Where", ["non_finite", c["zero"], x], "finite"),  # no inf/inf or log(0) on the way
        ("Abs", ["finite"], "abs"),
        ("Max", ["abs", c["min_normal"]], "normal"),  # subnormals round on the grid of 2^-126
        ("Log", ["normal"], "log"),
        ("Div", ["log", c["ln2"]], "log2"),
        ("Floor", ["log2"], "estimate"),  # floor(log2 |x|), possibly one off
        ("Pow", [c["two"], "estimate"], "power"),
        ("Greater", ["power", "normal"], "too_high"),
        ("Cast", ["too_high"], "too_high_f", {"to": TensorProto.FLOAT}),
        ("Mul", ["power", c["two"]], "next_power"),
        ("LessOrEqual", ["next_power", "normal"], "too_low"),
        ("Cast", ["too_low"], "too_low_f", {"to": TensorProto.FLOAT}),
        ("Sub", ["estimate", "too_high_f"], "lowered"),
        ("Add", ["lowered", "too_low_f"], "exponent"),
        ("Sub", ["exponent", c["kept_bits"]], "ulp_exponent"),
        ("Pow", [c["two"], "ulp_exponent"], "ulp"),
        ("Div", ["finite", "ulp"], "in_ulps"),
        ("Round", ["in_ulps"], "rounded_ulps"),  # half to even
        ("Mul", ["rounded_ulps", "ulp"], "rounded"),
        ("Where", ["non_finite", x, "rounded"], y),
    ]
    nodes = []
    for op, inputs, output, *attributes in steps:
        name = lambda value: value if value in (x, y) or value.startswith(prefix) else f"{prefix}_{value}"  # noqa: E731
        nodes.append(helper.make_node(op, [name(i) for i in inputs], [name(output)], name=f"{prefix}_{output}",
                                      **(attributes[0] if attributes else {})))
    return nodes, initializers


def emulate_tf32(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose float32 MatMul/Gemm/Conv inputs are rounded to TF32 first.

    Same inputs and outputs as ``model``; runs on any runtime (it computes what a GPU's default float32
    matmul computes, on the CPU). Inputs of other types are left as they are. Raises
    ``NotImplementedError`` for a graph with subgraphs (If/Loop bodies).
    """
    if not any(import_.domain in ("", "ai.onnx") and import_.version >= 13 for import_ in model.opset_import):
        raise ValueError("emulate_tf32 needs a default-domain opset of 13 or later")
    model = inferred_copy(model)
    reject_subgraphs(model)
    types = {value.name: value.type.tensor_type.elem_type for value in
             [*model.graph.input, *model.graph.value_info, *model.graph.output]}
    types.update((tensor.name, tensor.data_type) for tensor in model.graph.initializer)
    rounded: dict[str, str] = {}
    new_nodes: list[onnx.NodeProto] = []
    constants: list[onnx.TensorProto] = []
    for node in model.graph.node:
        for index in TF32_OPS.get(node.op_type, ()):
            source = node.input[index] if index < len(node.input) else ""
            if not source or types.get(source) != TensorProto.FLOAT:
                continue
            if source not in rounded:
                rounded[source] = f"tf32_{len(rounded)}"
                nodes, initializers = tf32_rounding_nodes(source, rounded[source], rounded[source])
                new_nodes.extend(nodes)
                constants.extend(initializers)
            node.input[index] = rounded[source]
        new_nodes.append(node)
    return with_nodes(model, new_nodes, constants)


class GatherElements(OpRun):
    """The specification's GatherElements; onnx's own reference implementation fails for axes longer than 64."""

    op_domain = ""

    def _run(self, data, indices, axis=None):
        axis = axis or 0
        return (np.take_along_axis(data, np.where(indices < 0, indices + data.shape[axis], indices), axis=axis),)


def evaluator(model: onnx.ModelProto, tf32: bool) -> ReferenceEvaluator:
    """``onnx.reference``'s evaluator of ``model``, or of :func:`emulate_tf32` of it when ``tf32``."""
    return ReferenceEvaluator(emulate_tf32(model) if tf32 else model, new_ops=[GatherElements])
