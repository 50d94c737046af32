"""Ties are resolved by the graphs, not by the backend: the tie-adversarial rewrite changes no output.

Every TopK/ArgMax/ArgMin of every catalog graph is rewritten to prefer the higher index among equal
values (:func:`exportloss.testing.flip_ties`), and the outputs must stay identical, bit for bit, on tie-heavy
inputs: the catalog's verification cases (which include scores in eighths and uint8 steps,
duplicated boxes with tied scores, equal scores across classes, more tied pairs than candidate
slots, NaN scores, zero features for the cosine heads) and NMS at several sizes, since the CUDA
TopK's tie order depends on the size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import exportloss
from exportloss import catalog
from exportloss.ops.ties import first_argmax
from exportloss.catalog.detection import nms_edge_cases
from exportloss.catalog.boxes import random_rotated_boxes
from exportloss.export import export_model
from exportloss.detection import NMSOptions
from exportloss.reference.detection import nms_reference
from exportloss.testing.ties import assert_tie_safe, tie_mismatches, tie_nodes

MODELS = Path(__file__).resolve().parents[2] / "models"


def catalog_model(name: str) -> onnx.ModelProto:
    return onnx.load(MODELS / f"{name}.onnx")


GRAPHS_WITH_TIE_NODES = [name for name in catalog.names() if tie_nodes(catalog_model(name))]


def cases_of(entry, shapes=None):
    return [(case.name, case.inputs) for case in entry.verification_cases(shapes)]


def test_the_catalog_has_graphs_to_test():
    assert set(GRAPHS_WITH_TIE_NODES) >= {"cluster_nms", "cluster_diou_nms", "fast_nms"}


@pytest.mark.parametrize("name", GRAPHS_WITH_TIE_NODES)
def test_catalog_graph_is_tie_safe(name):
    assert_tie_safe(catalog_model(name), cases_of(catalog.get(name)))


def test_no_argmax_or_argmin_in_the_catalog():
    """Arg-extrema go through exportloss.ops.ties.first_argmax (unique keys), whose order no backend can change."""
    for name in catalog.names():
        assert {node.op_type for node in tie_nodes(catalog_model(name))} <= {"TopK"}, name


@pytest.mark.parametrize("boxes, classes", [(64, 1), (4096, 1)])
def test_nms_is_tie_safe_at_other_sizes(boxes, classes):
    """Pairs P = 64 (every pair a candidate) and 4096 (the size at which the CUDA TopK reordered ties),
    besides the catalog's 80000."""
    entry = catalog.get("cluster_nms")
    shapes = {"boxes": (2, boxes, 4), "scores": (2, boxes, classes)}
    assert_tie_safe(export_model(entry, shapes=shapes), cases_of(entry, shapes))


def test_the_rewrite_catches_a_plain_topk():
    """Not vacuous: a plain TopK over tied scores (the NMS candidate selection before the tie rule) fails it."""

    class PlainTopK(torch.nn.Module):
        def forward(self, scores):
            return scores.topk(8, dim=1)

    model = torch.onnx.export(PlainTopK().eval(), (torch.rand(2, 40),), dynamo=True, input_names=["scores"]).model_proto
    tied = {"scores": (np.arange(80).reshape(2, 40) % 3 / 8).astype(np.float32)}
    assert tie_mismatches(model, [("tied", tied)])


def test_the_rewrite_catches_a_plain_argmax():
    class PlainArgMax(torch.nn.Module):
        def forward(self, x):
            return x.argmax(dim=1)

    model = torch.onnx.export(PlainArgMax().eval(), (torch.rand(3, 5),), dynamo=True, input_names=["x"]).model_proto
    assert tie_mismatches(model, [("tied", {"x": np.zeros((3, 5), np.float32)})])


def test_first_argmax_takes_the_lowest_index():
    x = torch.tensor([[1.0, 3, 3, 0], [2, 2, 2, 2], [0, 1, 5, 5]])
    values, index = first_argmax(x, 1)
    assert index.squeeze(1).tolist() == [1, 0, 2] and values.squeeze(1).tolist() == [3, 2, 5]
    assert first_argmax(x, 0)[1].squeeze(0).tolist() == [1, 0, 2, 2]


@pytest.mark.parametrize("num_classes", [1, 6])
def test_eager_nms_follows_the_same_tie_rule(num_classes):
    """Eager PyTorch runs the same tie rule: equal to the stable-sort reference on the tie-heavy cases."""
    shapes = {"boxes": (2, 300, 4), "scores": (2, 300, num_classes) if num_classes > 1 else (2, 300)}
    for case in nms_edge_cases(shapes, np.random.default_rng(5)):
        boxes, scores = torch.from_numpy(case.inputs["boxes"]), torch.from_numpy(case.inputs["scores"])
        got = exportloss.cluster_nms(boxes, scores, candidates=200, max_det=50)
        want = nms_reference(boxes.double(), scores.double(), NMSOptions(candidates=200, max_det=50))
        for name, g, w in zip(got._fields, got, want):
            torch.testing.assert_close(g.double(), w.double(), atol=0, rtol=0, msg=f"{case.name}/{name}")


def test_rotated_iou_is_tie_safe_on_coinciding_corners():
    """The polygon's candidate points tie in pseudo-angle wherever corners and crossings coincide up to
    rounding (identical boxes, θ + π, swapped sides with θ + π/2, a 1e-7 turn, integer grids); a plain
    TopK over them made ~1 in 4 of these IoUs depend on the tie order, by up to ~4e-7."""
    rng = np.random.default_rng(6)
    n = 1024
    entry = catalog.get("rotated_aligned_iou")
    shapes = {"boxes1": (1, n, 5), "boxes2": (1, n, 5)}
    boxes = random_rotated_boxes(rng, (n, 5))
    far = random_rotated_boxes(rng, (n, 5), offset=9900.0)
    cx, cy, w, h, theta = boxes.T
    grid = np.stack([*rng.integers(0, 8, (2, n)), *rng.integers(0, 6, (2, n)), rng.integers(0, 8, n) * (np.pi / 4)], -1)
    pairs = {
        "identical": (boxes, boxes),
        "identical-near-1e4": (far, far),
        "theta-plus-pi": (boxes, np.stack([cx, cy, w, h, theta + np.pi], -1)),
        "sides-swapped": (boxes, np.stack([cx, cy, h, w, theta + np.pi / 2], -1)),
        "tiny-turn": (boxes, np.stack([cx, cy, w, h, theta + 1e-7], -1)),
        "zero-width": (np.stack([cx, cy, 0 * w, h, theta], -1), boxes),
        "integer-grid": (grid, grid[rng.permutation(n)]),
    }
    cases = [(name, {"boxes1": a.astype(np.float32)[None], "boxes2": b.astype(np.float32)[None]}) for name, (a, b) in pairs.items()]
    assert_tie_safe(export_model(entry, shapes=shapes), cases)
