"""Rotated boxes: exact IoU against shapely polygons, ProbIoU against its matrix form, invariances,
tie-order independence, finite gradients on degenerate pairs, conversions and rotated Cluster-NMS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import exportloss
from exportloss.boxes import rotated as rotated_module
from exportloss.catalog.boxes import DEGENERATE_ROTATED_PAIRS, random_rotated_boxes
from exportloss.catalog.detection import rotated_scene
from exportloss.reference.boxes import probiou_pair, rotated_pair_iou
from exportloss.detection import RotatedNMSOptions
from exportloss.reference.detection import rotated_nms_reference
from exportloss.boxes.rotated import (
    RotatedIoULoss, polygon_to_rotated, probiou, rotated_aligned_iou, rotated_pairwise_iou, rotated_to_polygon, to_mmrotate,
)

shapely = pytest.importorskip("shapely")
from shapely.geometry import Polygon  # noqa: E402


def shapely_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two rotated boxes from shapely's polygon intersection, corners built here independently."""

    def polygon(box):
        cx, cy, w, h, t = (float(v) for v in box)
        c, s = math.cos(t), math.sin(t)
        return Polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))])

    p, q = polygon(a), polygon(b)
    inter = p.intersection(q).area
    union = p.area + q.area - inter
    return inter / (union + 1e-7) if p.area > 0 and q.area > 0 else 0.0


def overlapping_pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = random_rotated_boxes(rng, (n, 5))
    b = random_rotated_boxes(rng, (n, 5))
    b[:, :2] = a[:, :2] + rng.normal(0.0, 10.0, size=(n, 2)).astype(np.float32)  # most pairs overlap
    return a, b


def test_exact_iou_matches_shapely_on_random_pairs():
    a, b = overlapping_pairs(np.random.default_rng(0), 3000)
    got = rotated_aligned_iou(torch.from_numpy(a), torch.from_numpy(b)).double().numpy()
    want = np.array([shapely_iou(x.astype(np.float64), y.astype(np.float64)) for x, y in zip(a, b)])
    assert (want > 0).mean() > 0.7
    assert np.abs(got - want).max() <= 1e-5


def test_pairwise_is_aligned_on_every_pair_and_matches_shapely():
    rng = np.random.default_rng(1)
    a, b = random_rotated_boxes(rng, (2, 40, 5)), random_rotated_boxes(rng, (2, 30, 5))
    got = rotated_pairwise_iou(torch.from_numpy(a), torch.from_numpy(b))
    assert got.shape == (2, 40, 30)
    aligned = rotated_aligned_iou(torch.from_numpy(a)[:, :, None], torch.from_numpy(b)[:, None])
    assert torch.equal(got, aligned)
    want = np.array([[[shapely_iou(x, y) for y in b[i]] for x in a[i]] for i in range(2)])
    assert np.abs(got.double().numpy() - want).max() <= 1e-5


def test_blocks_of_rows_give_the_same_matrix(monkeypatch):
    rng = np.random.default_rng(2)
    a, b = torch.from_numpy(random_rotated_boxes(rng, (50, 5))), torch.from_numpy(random_rotated_boxes(rng, (20, 5)))
    whole = rotated_pairwise_iou(a, b)
    monkeypatch.setattr(rotated_module, "ROW_BLOCK", 7)
    assert torch.equal(rotated_pairwise_iou(a, b), whole)


@pytest.mark.parametrize("index", range(len(DEGENERATE_ROTATED_PAIRS)))
def test_degenerate_pairs_match_shapely_and_the_reference(index):
    a, b = (np.array(box, dtype=np.float64) for box in DEGENERATE_ROTATED_PAIRS[index])
    got = rotated_aligned_iou(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)).item()
    a32, b32 = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    assert got == pytest.approx(shapely_iou(a32, b32), abs=2e-5)
    assert rotated_pair_iou(list(a32), list(b32)) == pytest.approx(shapely_iou(a32, b32), abs=1e-9)


def test_same_box_written_three_ways_has_iou_one_even_at_1e4():
    rng = np.random.default_rng(3)
    boxes = torch.from_numpy(random_rotated_boxes(rng, (500, 5), offset=9900.0))
    cx, cy, w, h, t = boxes.unbind(-1)
    for same in (boxes, torch.stack([cx, cy, w, h, t + math.pi], -1), torch.stack([cx, cy, h, w, t + math.pi / 2], -1)):
        assert (rotated_aligned_iou(boxes, same) - 1).abs().max() <= 2e-5
        assert (probiou(boxes, same, aligned=True) - probiou(boxes, boxes, aligned=True)).abs().max() <= 2e-4


def test_tie_order_of_the_candidates_does_not_change_the_area(monkeypatch):
    """Reversing or shuffling the 24 candidates changes TopK's tie order, never the area."""
    rng = np.random.default_rng(4)
    a, b = overlapping_pairs(rng, 400)
    deg_a = np.array([p[0] for p in DEGENERATE_ROTATED_PAIRS], np.float32)
    deg_b = np.array([p[1] for p in DEGENERATE_ROTATED_PAIRS], np.float32)
    a, b = torch.from_numpy(np.concatenate([a, deg_a])), torch.from_numpy(np.concatenate([b, deg_b]))
    baseline = rotated_aligned_iou(a, b)
    polygon_area = rotated_module._polygon_area
    for permutation in (torch.arange(23, -1, -1), torch.randperm(24, generator=torch.Generator().manual_seed(0))):
        monkeypatch.setattr(rotated_module, "_polygon_area", lambda x, y, v, p=permutation: polygon_area(x[..., p], y[..., p], v[..., p]))
        assert (rotated_aligned_iou(a, b) - baseline).abs().max() <= 1e-6


def test_probiou_matches_the_matrix_form_and_ultralytics_formula():
    rng = np.random.default_rng(5)
    a, b = overlapping_pairs(rng, 300)
    got = probiou(torch.from_numpy(a), torch.from_numpy(b), aligned=True).double().numpy()
    want = np.array([probiou_pair(list(x.astype(np.float64)), list(y.astype(np.float64))) for x, y in zip(a, b)])
    assert np.abs(got - want).max() <= 1e-4

    # ultralytics' formula, written out from the paper's closed form in covariance entries (float64).
    def ultralytics_style(x, y, eps=1e-7):
        def cov(box):
            a_, b_ = box[..., 2] ** 2 / 12, box[..., 3] ** 2 / 12
            c, s = np.cos(box[..., 4]), np.sin(box[..., 4])
            return a_ * c**2 + b_ * s**2, a_ * s**2 + b_ * c**2, (a_ - b_) * c * s
        a1, b1, c1 = cov(x)
        a2, b2, c2 = cov(y)
        x1, y1, x2, y2 = x[..., 0], x[..., 1], y[..., 0], y[..., 1]
        den = (a1 + a2) * (b1 + b2) - (c1 + c2) ** 2
        t1 = ((a1 + a2) * (y1 - y2) ** 2 + (b1 + b2) * (x1 - x2) ** 2) / (den + eps) * 0.25
        t2 = ((c1 + c2) * (x2 - x1) * (y1 - y2)) / (den + eps) * 0.5
        t3 = np.log(den / (4 * np.sqrt(np.clip(a1 * b1 - c1**2, 0, None) * np.clip(a2 * b2 - c2**2, 0, None)) + eps) + eps) * 0.5
        bd = np.clip(t1 + t2 + t3, eps, 100.0)
        return 1 - np.sqrt(1 - np.exp(-bd) + eps)

    assert np.abs(got - ultralytics_style(a.astype(np.float64), b.astype(np.float64))).max() <= 1e-4


@pytest.mark.parametrize("kind", ["iou", "probiou"])
def test_degenerate_pairs_give_finite_values_and_gradients(kind):
    a = torch.tensor([p[0] for p in DEGENERATE_ROTATED_PAIRS], requires_grad=True)
    b = torch.tensor([p[1] for p in DEGENERATE_ROTATED_PAIRS], requires_grad=True)
    loss = RotatedIoULoss(kind, reduction="sum")(a, b)
    pairwise = rotated_pairwise_iou(a, b, kind).sum()
    (loss + pairwise).backward()
    assert torch.isfinite(loss) and torch.isfinite(pairwise)
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    values = rotated_aligned_iou(a, b, kind)
    assert ((values >= 0) & (values <= 1)).all()


def test_iou_gradient_matches_finite_differences_on_an_ordinary_pair():
    a = torch.tensor([[10.0, 12.0, 20.0, 9.0, 0.4]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[14.0, 10.0, 15.0, 12.0, -0.3]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: rotated_aligned_iou(x, b), (a,), eps=1e-6, atol=1e-5)


def test_polygon_round_trip_and_mmrotate_ranges():
    rng = np.random.default_rng(6)
    boxes = torch.from_numpy(random_rotated_boxes(rng, (200, 5))).double()
    back = polygon_to_rotated(rotated_to_polygon(boxes))
    assert (rotated_aligned_iou(boxes.float(), back.float()) - 1).abs().max() <= 1e-5
    assert torch.allclose(back[..., :4], boxes[..., :4], atol=1e-9)
    for version in ("le90", "le135", "oc"):
        canonical = to_mmrotate(boxes, version)
        assert (rotated_aligned_iou(boxes.float(), canonical.float()) - 1).abs().max() <= 1e-5
        theta = canonical[..., 4]
        if version == "oc":
            assert ((theta > 0) & (theta <= math.pi / 2 + 1e-12)).all()
        else:
            low = -math.pi / 2 if version == "le90" else -math.pi / 4
            assert ((theta >= low) & (theta < low + math.pi)).all() and (canonical[..., 2] >= canonical[..., 3]).all()


def test_bad_input_gets_one_line_errors():
    with pytest.raises(ValueError, match=r"boxes1 must have shape \[..., N, 5\]"):
        rotated_pairwise_iou(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="kind must be one of"):
        rotated_aligned_iou(torch.zeros(3, 5), torch.zeros(3, 5), kind="giou")
    with pytest.raises(ValueError, match="pred must have shape"):
        RotatedIoULoss()(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="criterion must be one of"):
        exportloss.rotated_cluster_nms(torch.zeros(1, 3, 5), torch.zeros(1, 3), criterion="diou")
    with pytest.raises(ValueError, match=r"boxes must have shape \[B, N, 5\]"):
        exportloss.rotated_cluster_nms(torch.zeros(1, 3, 4), torch.zeros(1, 3))


@pytest.mark.parametrize("criterion", ["iou", "probiou"])
def test_rotated_cluster_nms_equals_greedy_reference(criterion):
    scene = rotated_scene(np.random.default_rng(7), (2, 120, 5), (2, 120, 4))
    boxes, scores = torch.from_numpy(scene["boxes"]), torch.from_numpy(scene["scores"])
    got = exportloss.rotated_cluster_nms(boxes, scores, criterion=criterion, candidates=200)
    want = rotated_nms_reference(boxes, scores, RotatedNMSOptions(criterion=criterion, candidates=200))
    assert got.det_boxes.shape == (2, 100, 5)
    assert torch.equal(got.num_dets, want[0]) and torch.equal(got.det_classes, want[3])
    assert torch.allclose(got.det_boxes.double(), want[1]) and torch.allclose(got.det_scores.double(), want[2])


def test_rotated_nms_treats_theta_plus_pi_as_the_same_box():
    box = torch.tensor([[50.0, 50.0, 30.0, 10.0, 0.3]])
    boxes = torch.cat([box, box + torch.tensor([0, 0, 0, 0, math.pi])]).unsqueeze(0)
    dets = exportloss.rotated_cluster_nms(boxes, torch.tensor([[0.9, 0.8]]))
    assert dets.num_dets.tolist() == [1]


@pytest.mark.parametrize("eps", [-1.0, 0.0, float("nan"), float("inf"), "1e-7"])
@pytest.mark.parametrize("function", ["rotated_aligned_iou", "rotated_pairwise_iou", "probiou"])
def test_functions_check_eps_as_the_modules_do(function, eps):
    """Issue 22, finding 2: rotated_aligned_iou(a, a, eps=-1) gave an IoU of 1.14; RotatedIoULoss refused it."""
    import exportloss

    boxes = torch.tensor([[[50.0, 50.0, 30.0, 20.0, 0.3]]])
    with pytest.raises((ValueError, TypeError), match="eps"):
        getattr(exportloss, function)(boxes, boxes, eps=eps)
    with pytest.raises((ValueError, TypeError), match="eps"):
        exportloss.RotatedIoULoss(eps=eps)


def test_probiou_aligned_is_a_boolean():
    boxes = torch.tensor([[50.0, 50.0, 30.0, 20.0, 0.3]])
    with pytest.raises(TypeError, match="aligned must be True or False; got 'no'"):
        exportloss.probiou(boxes, boxes, aligned="no")
