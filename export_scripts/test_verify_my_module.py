"""Example (c): verify YOUR OWN module with exportloss's export-verification harness, in a pytest test.

Describe the module once as a :class:`~exportloss.catalog.GraphEntry` (how to build it, its static
input shapes, a float64 reference written independently, fresh random inputs and edge cases), then
export it with both exporters, check the graph (ONNX checker, strict shape inference, banned
operators, static shapes; TensorRT's parser table) and compare onnxruntime with the reference on
seeded inputs that differ from the export example. Nothing needs registering in the catalog.

    .venv/bin/python -m pytest -q export_scripts/test_verify_my_module.py
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import exportloss
from exportloss.catalog import Case, GraphEntry, TensorSpec
from exportloss.catalog.boxes import random_boxes
from exportloss.export import EXPORTERS, export_graph
from exportloss.graph_checks import check_graph
from exportloss.trt import check_model
from exportloss.verify import verify


class IoUWeightedL1(nn.Module):
    """A user's box-regression loss: per box ``(2 − IoU) · Σ|pred − target| / 4``, averaged over the
    boxes whose ``weight > 0`` (0 when there are none)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        iou = exportloss.aligned_iou(pred, target).detach()
        per_box = (2.0 - iou) * (pred - target).abs().mean(dim=-1) * weight
        return per_box.sum() / (weight > 0).sum().clamp(min=1)


def reference(module: nn.Module, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The same loss in float64, box by box (IoU with the library's eps of 1e-7)."""
    total, count = 0.0, 0
    for p, t, w in zip(pred.tolist(), target.tolist(), weight.tolist()):
        inter = max(0.0, min(p[2], t[2]) - max(p[0], t[0])) * max(0.0, min(p[3], t[3]) - max(p[1], t[1]))
        union = (p[2] - p[0]) * (p[3] - p[1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
        total += (2.0 - inter / (union + 1e-7)) * sum(abs(a - b) for a, b in zip(p, t)) / 4 * w
        count += w > 0
    return torch.tensor(total / max(count, 1), dtype=torch.float64)


def random_inputs(shapes, rng: np.random.Generator) -> dict[str, np.ndarray]:
    target = random_boxes(rng, shapes["target"])
    pred = target + rng.normal(0.0, 3.0, size=target.shape).astype(np.float32)
    return {"pred": pred, "target": target, "weight": rng.uniform(0.0, 2.0, shapes["weight"]).astype(np.float32)}


def edge_cases(shapes, rng: np.random.Generator) -> list[Case]:
    ordinary = random_inputs(shapes, rng)
    return [
        Case("no-positive-weight", dict(ordinary, weight=np.zeros(shapes["weight"], np.float32))),
        Case("perfect-predictions", dict(ordinary, pred=ordinary["target"].copy())),
    ]


MY_LOSS = GraphEntry(
    name="iou_weighted_l1",
    summary="IoU-weighted L1 box loss (a user's module)",
    sizes={"boxes": 256},  # named sizes: `entry.at(sizes={"boxes": 1000})` is the same graph at 1000 boxes
    make=lambda sizes: IoUWeightedL1(),
    inputs=(TensorSpec("pred", ("boxes", 4)), TensorSpec("target", ("boxes", 4)), TensorSpec("weight", ("boxes",))),
    outputs=(TensorSpec("loss", ()),),
    reference=reference,
    random_inputs=random_inputs,
    edge_cases=edge_cases,
)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_my_loss_exports_and_matches_its_reference(tmp_path, exporter):
    path = export_graph(MY_LOSS, tmp_path, exporter=exporter).path
    check_graph(onnx.load(str(path)))
    trt = check_model(path)
    assert trt.compatible, [str(f) for f in trt.errors]
    rows = verify(path, entry=MY_LOSS)
    assert rows and all(row.passed for row in rows), [row.failures for row in rows]
