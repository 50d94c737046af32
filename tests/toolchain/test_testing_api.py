"""``exportloss.testing``: the adversaries as public functions, ``assert_exports``, the pytest plugin, ``exportloss check``."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from exportloss.testing import emulate_tf32, round_to_tf32


def one_node_model(op: str, inputs: dict[str, list[int]], output: str, shape: list[int], **attributes) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, list(inputs), [output], **attributes)], op.lower(),
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims) for name, dims in inputs.items()],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def run_cpu(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_the_tf32_graph_rounds_exactly_like_the_bits():
    """The ONNX rounding equals the bit-level rule on random bit patterns, exact ties, near-ties, subnormals,
    the largest float32 (which rounds to infinity) and non-finite values."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    truncated = bits & ~np.uint32(0x1FFF)
    near = [truncated | np.uint32(low) for low in (0x1000, 0x0FFF, 0x1001, 0x3000)]
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(np.float32).max, np.finfo(np.float32).tiny,
                        1e-45, -3e-42, 1 + 2**-11, 1 + 3 * 2**-11, 4097, -4099], np.float32)
    x = np.concatenate([bits, *near]).view(np.float32)
    x = np.concatenate([x, special]).reshape(-1, 1)
    identity = one_node_model("MatMul", {"x": [x.shape[0], 1], "one": [1, 1]}, "y", [x.shape[0], 1])
    (got,) = run_cpu(emulate_tf32(identity), {"x": x, "one": np.ones((1, 1), np.float32)})
    want = round_to_tf32(x)
    same = (got == want) | (np.isnan(got) & np.isnan(want))  # == : the MatMul's sum turns -0 into +0
    assert same.all(), x[~same][:5]


def test_emulate_tf32_rounds_gemm_and_conv_inputs_but_not_the_bias():
    a = np.full((2, 3), 4097.0, np.float32)
    gemm = one_node_model("Gemm", {"a": [2, 3], "b": [3, 2], "c": [2]}, "y", [2, 2])
    (got,) = run_cpu(emulate_tf32(gemm), {"a": a, "b": np.eye(3, 2, dtype=np.float32), "c": np.full(2, 0.5, np.float32)})
    assert np.array_equal(got, np.full((2, 2), 4096.5, np.float32))
    conv = one_node_model("Conv", {"x": [1, 1, 1, 3], "w": [1, 1, 1, 1]}, "y", [1, 1, 1, 3])
    (got,) = run_cpu(emulate_tf32(conv), {"x": a[:1].reshape(1, 1, 1, 3), "w": np.ones((1, 1, 1, 1), np.float32)})
    assert np.array_equal(got, np.full((1, 1, 1, 3), 4096.0, np.float32))
