"""The catalog under TF32 matrix products (a GPU backend's default): exact sums stay exact, metrics stay in tolerance.

Graphs run in ``onnx.reference.ReferenceEvaluator`` twice, with plain float32 MatMul and with MatMul
whose inputs are rounded to TF32 (:func:`exportloss.testing.emulate_tf32`). The emulation reproduces the GPU's
numbers: on arc_softmax it gives the 3.7e-3 relative error measured on an H200 with onnxruntime's
CUDA provider (``../shared/reference/gpu-runs.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from exportloss import catalog
from exportloss.testing.tf32 import evaluator, round_to_tf32

MODELS = Path(__file__).resolve().parents[2] / "models"
EXACT_SUM_GRAPHS = ("center_update",)
"""One-hot MatMuls whose float32 result must not depend on the matmul precision (Veltkamp-split features)."""
EXACT_COUNT_GRAPHS = ("cluster_nms", "cluster_diou_nms", "fast_nms", "cluster_nms_best_class", "cluster_nms_efficientnms",
                      "rotated_cluster_nms")
"""0/1 x 0/1 MatMuls (NMS's suppression counts): exact in TF32 as they stand."""
TF32_TOLERANCE = {"arc_softmax": 2e-3, "arcface_loss": 2e-3, "cosface_loss": 2e-3}
"""Absolute tolerance under TF32 of the graphs whose MatMul *is* the metric (cosine logits); the README
states them with the measured errors (7.0e-4, 9.1e-4, 9.3e-4 on the catalog's verification cases)."""


def max_difference(model: onnx.ModelProto, cases) -> tuple[float, float]:
    """Largest ``(abs, ulp-relative)`` difference between TF32 and plain evaluation over ``cases``."""
    plain, tf32 = evaluator(model, tf32=False), evaluator(model, tf32=True)
    worst_abs = worst_ulps = 0.0
    for case in cases:
        for want, got in zip(plain.run(None, case.inputs), tf32.run(None, case.inputs)):
            assert np.array_equal(np.isnan(want), np.isnan(got)) if want.dtype.kind == "f" else True
            finite = np.isfinite(want) if want.dtype.kind == "f" else np.ones(want.shape, bool)
            want, got = want[finite].astype(np.float64), got[finite].astype(np.float64)
            if want.size:
                diff = np.abs(want - got)
                worst_abs = max(worst_abs, float(diff.max()))
                ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
                worst_ulps = max(worst_ulps, float((diff / ulp).max()))
    return worst_abs, worst_ulps


def test_round_to_tf32_keeps_ten_mantissa_bits_round_to_nearest_even():
    x = np.array([1 + 2**-10, 1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-11 + 2**-20, 4097, -4099, np.inf, np.nan], np.float32)
    want = np.array([1 + 2**-10, 1, 1 + 2 * 2**-10, 1 + 2**-10, 4096, -4100, np.inf, np.nan], np.float32)
    np.testing.assert_array_equal(round_to_tf32(x), want)


def test_the_emulation_breaks_a_plain_one_hot_sum():
    """A one-hot MatMul of features with 13 significant bits, the form center_update had, is off under TF32."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["one_hot_t", "features"], ["sums"])], "one_hot_sum",
        [helper.make_tensor_value_info("one_hot_t", TensorProto.FLOAT, [3, 8]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, [8, 4])],
        [helper.make_tensor_value_info("sums", TensorProto.FLOAT, [3, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    rng = np.random.default_rng(0)
    inputs = {"one_hot_t": np.eye(3, 8, dtype=np.float32), "features": (4097 + 2 * rng.integers(0, 64, (8, 4))).astype(np.float32)}
    plain, tf32 = evaluator(model, tf32=False).run(None, inputs)[0], evaluator(model, tf32=True).run(None, inputs)[0]
    assert np.abs(plain - tf32).max() >= 1.0


@pytest.mark.parametrize("name", EXACT_SUM_GRAPHS)
def test_exact_sum_graphs_do_not_depend_on_tf32(name):
    """Within float32 rounding of the sums: the emulation accumulates in float64, the plain MatMul in float32.

    Measured: bit-identical (0 ulp) on every verification case, including features with 13 significant bits.
    """
    cases = catalog.get(name).verification_cases()
    assert any(case.name == "features-beyond-tf32" for case in cases)
    _, worst_ulps = max_difference(onnx.load(MODELS / f"{name}.onnx"), cases)
    assert worst_ulps <= 2.0


@pytest.mark.parametrize("name", EXACT_COUNT_GRAPHS)
def test_nms_counts_are_bit_identical_under_tf32(name):
    cases = [case for case in catalog.get(name).verification_cases() if case.name in ("random-0", "scores-in-eighths")]
    assert max_difference(onnx.load(MODELS / f"{name}.onnx"), cases) == (0.0, 0.0)


@pytest.mark.parametrize("name", sorted(TF32_TOLERANCE))
def test_cosine_metric_graphs_stay_within_the_stated_tf32_tolerance(name):
    worst_abs, _ = max_difference(onnx.load(MODELS / f"{name}.onnx"), catalog.get(name).verification_cases())
    assert 0.0 < worst_abs <= TF32_TOLERANCE[name]  # > 0: the emulation did reach this MatMul


def test_every_matmul_in_the_catalog_is_classified():
    """A new MatMul/Gemm must be declared exact-sum, exact-count, or a metric with a TF32 tolerance."""
    declared = set(EXACT_SUM_GRAPHS) | set(EXACT_COUNT_GRAPHS) | set(TF32_TOLERANCE)
    with_matmul = {name for name in catalog.names()
                   if any(node.op_type in ("MatMul", "Gemm") for node in onnx.load(MODELS / f"{name}.onnx").graph.node)}
    assert with_matmul == declared
