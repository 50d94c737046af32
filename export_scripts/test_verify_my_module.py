"""Example (c): verify YOUR OWN module's export in a pytest test, with ``exportloss.testing``.

``assert_exports`` exports the module (here with both exporters), checks the graph, and compares
onnxruntime with a float64 reference on the example, on fresh seeded inputs drawn like it (a value the
TorchScript exporter baked into a constant fails there) and on your own cases, then runs the tie-order
and TF32 adversaries and the TensorRT and CUDA-provider tables. Nothing needs registering in the catalog.
The second test uses the pytest plugin's ``exportloss_check`` fixture (installed with the ``export``
extra): ``--exportloss-backend ort-cuda`` runs it on the GPU too, and skips with the reason where there is none.

    .venv/bin/python -m pytest -q export_scripts/test_verify_my_module.py
"""

from __future__ import annotations

import torch
from torch import nn

import exportloss
from exportloss.testing import assert_exports


class IoUWeightedL1(nn.Module):
    """A user's box-regression loss: per box ``(2 − IoU) · Σ|pred − target| / 4``, averaged over the
    boxes whose ``weight > 0`` (0 when there are none)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        iou = exportloss.aligned_iou(pred, target).detach()
        per_box = (2.0 - iou) * (pred - target).abs().mean(dim=-1) * weight
        return per_box.sum() / (weight > 0).sum().clamp(min=1)


def reference(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The same loss written independently, box by box in float64 (IoU with the library's eps of 1e-7).

    Optional: without ``reference=``, ``assert_exports`` runs a float64 copy of the module itself.
    """
    total, count = 0.0, 0
    for p, t, w in zip(pred.tolist(), target.tolist(), weight.tolist()):
        inter = max(0.0, min(p[2], t[2]) - max(p[0], t[0])) * max(0.0, min(p[3], t[3]) - max(p[1], t[1]))
        union = (p[2] - p[0]) * (p[3] - p[1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
        total += (2.0 - inter / (union + 1e-7)) * sum(abs(a - b) for a, b in zip(p, t)) / 4 * w
        count += w > 0
    return torch.tensor(total / max(count, 1), dtype=torch.float64)


def example_inputs(boxes: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    corner = torch.rand(boxes, 2, generator=g) * 600
    target = torch.cat([corner, corner + 8 + torch.rand(boxes, 2, generator=g) * 120], dim=1)
    return target + torch.randn(boxes, 4, generator=g) * 3, target, torch.rand(boxes, generator=g) * 2


def test_my_loss_exports_and_matches_its_reference():
    pred, target, weight = example_inputs()
    edge_cases = {"no-positive-weight": (pred, target, torch.zeros_like(weight)), "perfect": (target, target, weight)}
    assert_exports(IoUWeightedL1(), (pred, target, weight), reference=reference, cases=edge_cases,
                   exporters=("dynamo", "torchscript"))


def test_my_loss_with_the_pytest_plugin(exportloss_check):
    exportloss_check(IoUWeightedL1(), example_inputs())
