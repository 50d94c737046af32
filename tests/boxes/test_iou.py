"""The IoU family against independent float64 math, hand-worked values, and on degenerate boxes."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import exportloss
from exportloss.catalog.boxes import DEGENERATE_PAIRS, random_boxes
from exportloss.reference.boxes import aligned_reference, pairwise_reference

KINDS = ("iou", "giou", "diou", "ciou")
FORMATS = ("xyxy", "xywh", "cxcywh")


def torchvision_style(b1: torch.Tensor, b2: torch.Tensor, kind: str, eps: float = 1e-7) -> torch.Tensor:
    """Pairwise metrics written the way torchvision.ops.boxes writes them (float64, xyxy, no eps on IoU)."""
    b1, b2 = b1.double(), b2.double()
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    lt = torch.max(b1[:, None, :2], b2[None, :, :2])
    rb = torch.min(b1[:, None, 2:], b2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    iou = inter / union
    lti = torch.min(b1[:, None, :2], b2[None, :, :2])
    rbi = torch.max(b1[:, None, 2:], b2[None, :, 2:])
    whi = (rbi - lti).clamp(min=0)
    if kind == "iou":
        return iou
    if kind == "giou":
        areai = whi[..., 0] * whi[..., 1]
        return iou - (areai - union) / areai
    diag = whi[..., 0] ** 2 + whi[..., 1] ** 2 + eps
    c1 = (b1[:, :2] + b1[:, 2:]) / 2
    c2 = (b2[:, :2] + b2[:, 2:]) / 2
    dist = ((c1[:, None, :] - c2[None, :, :]) ** 2).sum(-1)
    diou = iou - dist / diag
    if kind == "diou":
        return diou
    w1, h1 = b1[:, 2] - b1[:, 0], b1[:, 3] - b1[:, 1]
    w2, h2 = b2[:, 2] - b2[:, 0], b2[:, 3] - b2[:, 1]
    v = (4 / math.pi**2) * (torch.atan(w1 / h1)[:, None] - torch.atan(w2 / h2)[None, :]) ** 2
    alpha = v / (1 - iou + v + eps)
    return diou - alpha * v


def from_xyxy(boxes: torch.Tensor, fmt: str) -> torch.Tensor:
    """Independent format conversion for the tests."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    if fmt == "xyxy":
        return boxes
    if fmt == "xywh":
        return torch.stack([x1, y1, x2 - x1, y2 - y1], -1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)


@pytest.fixture
def ordinary():
    rng = np.random.default_rng(7)
    return torch.from_numpy(random_boxes(rng, (37, 4))), torch.from_numpy(random_boxes(rng, (23, 4)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_pairwise_matches_torchvision_formulas(ordinary, kind, fmt):
    b1, b2 = ordinary
    expected = torchvision_style(b1, b2, kind)
    got = exportloss.pairwise_iou(from_xyxy(b1, fmt), from_xyxy(b2, fmt), kind=kind, fmt=fmt)
    assert got.shape == (37, 23) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=0)
    reference = pairwise_reference(from_xyxy(b1, fmt).double(), from_xyxy(b2, fmt).double(), kind, fmt)
    torch.testing.assert_close(reference, expected, atol=1e-6, rtol=0)  # eps placement and float32 format conversion


def test_iou_and_distance_split_diou(ordinary):
    b1, b2 = ordinary
    iou, distance = exportloss.pairwise_iou_and_distance(b1, b2)
    torch.testing.assert_close(iou.double(), torchvision_style(b1, b2, "iou"), atol=1e-5, rtol=0)
    torch.testing.assert_close((iou - distance).double(), torchvision_style(b1, b2, "diou"), atol=1e-5, rtol=0)
    assert (distance >= 0).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_aligned_is_the_diagonal(ordinary, kind, fmt):
    b1, b2 = ordinary[0][:23], ordinary[1]
    expected = torchvision_style(b1, b2, kind).diagonal()
    got = exportloss.aligned_iou(from_xyxy(b1, fmt), from_xyxy(b2, fmt), kind=kind, fmt=fmt)
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=0)


def test_hand_worked_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    # I = 1, U = 7, enclosing box 3x3: C = 9, c^2 = 18; centres (1,1) and (2,2): rho^2 = 2.
    expected = {"iou": 1 / 7, "giou": 1 / 7 - 2 / 9, "diou": 1 / 7 - 2 / 18, "ciou": 1 / 7 - 2 / 18}
    for kind, value in expected.items():
        assert exportloss.aligned_iou(a, b, kind=kind).item() == pytest.approx(value, abs=1e-6)
    # 4x2 against 2x4 sharing a corner: I = 4, U = 12, c^2 = 32, rho^2 = 2, v = 4/pi^2 (atan 2 - atan 0.5)^2.
    a = torch.tensor([0.0, 0.0, 4.0, 2.0])
    b = torch.tensor([0.0, 0.0, 2.0, 4.0])
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(0.5)) ** 2
    alpha = v / (1 - 1 / 3 + v)
    assert exportloss.aligned_iou(a, b, kind="ciou").item() == pytest.approx(1 / 3 - 2 / 32 - alpha * v, abs=1e-6)


def test_loss_matches_torchvision_loss_formulas(ordinary):
    b1, b2 = ordinary[0][:23], ordinary[1]
    weight = torch.linspace(0.5, 2.0, 23)
    for kind in KINDS:
        per_box = 1 - torchvision_style(b1, b2, kind).diagonal()
        for reduction, expected in (("none", per_box * weight), ("sum", (per_box * weight).sum()),
                                    ("mean", (per_box * weight).mean())):
            got = exportloss.IoULoss(kind, reduction=reduction)(b1, b2, weight)
            torch.testing.assert_close(got.double(), expected.double(), atol=1e-5, rtol=1e-6)


def test_batch_dims_broadcast():
    rng = np.random.default_rng(3)
    b1 = torch.from_numpy(random_boxes(rng, (2, 1, 5, 4)))
    b2 = torch.from_numpy(random_boxes(rng, (3, 6, 4)))
    got = exportloss.pairwise_iou(b1, b2, kind="diou")
    assert got.shape == (2, 3, 5, 6)
    torch.testing.assert_close(got.double(), pairwise_reference(b1.double(), b2.double(), "diou"), atol=1e-6, rtol=0)
    single = exportloss.aligned_iou(b1[0, 0, 0], b2, kind="giou")
    assert single.shape == (3, 6)


DEGENERATE = torch.tensor([a for a, _ in DEGENERATE_PAIRS]), torch.tensor([b for _, b in DEGENERATE_PAIRS])


@pytest.mark.parametrize("kind", KINDS)
def test_degenerate_boxes_give_documented_finite_values(kind):
    a, b = DEGENERATE
    got = exportloss.aligned_iou(a, b, kind=kind)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), aligned_reference(a.double(), b.double(), kind), atol=1e-5, rtol=0)
    points = torch.tensor([10.0, 10.0, 10.0, 10.0])
    assert exportloss.aligned_iou(points, points, kind=kind).item() == 0.0  # two empty boxes overlap by 0
    identical = torch.tensor([3.0, 4.0, 50.0, 60.0])
    assert exportloss.aligned_iou(identical, identical, kind=kind).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["pairwise", "aligned"])
def test_degenerate_boxes_give_finite_gradients(kind, mode):
    a, b = (t.clone().requires_grad_(True) for t in DEGENERATE)
    fn = exportloss.pairwise_iou if mode == "pairwise" else exportloss.aligned_iou
    fn(a, b, kind=kind).sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def test_ciou_alpha_carries_no_gradient():
    a = torch.tensor([[0.0, 0.0, 4.0, 2.0]], requires_grad=True)
    b = torch.tensor([[0.0, 0.0, 2.0, 4.0]])
    exportloss.aligned_iou(a, b, kind="ciou").sum().backward()
    grad_detached = a.grad.clone()
    # Same value with alpha recomputed as a constant by hand: gradients must agree.
    a2 = a.detach().clone().requires_grad_(True)
    w, h = a2[:, 2] - a2[:, 0], a2[:, 3] - a2[:, 1]
    v = 4 / math.pi**2 * (torch.atan(w / (h + 1e-7)) - math.atan(0.5)) ** 2
    diou = exportloss.aligned_iou(a2, b, kind="diou")
    iou = exportloss.aligned_iou(a.detach(), b, kind="iou")
    alpha = (v / (1 - iou + v + 1e-7)).detach()
    (diou - alpha * v).sum().backward()
    torch.testing.assert_close(grad_detached, a2.grad)


boxes_strategy = arrays(
    np.float32, (8, 4), elements=st.floats(0, 1e4, width=32, allow_nan=False, allow_infinity=False)
)


@settings(max_examples=60, deadline=None)
@given(boxes_strategy, boxes_strategy, st.sampled_from(KINDS))
def test_fuzz_finite_and_matches_reference(raw1, raw2, kind):
    b1, b2 = torch.from_numpy(raw1), torch.from_numpy(raw2)
    got = exportloss.pairwise_iou(b1, b2, kind=kind)
    assert torch.isfinite(got).all()
    lower = {"iou": 0.0, "giou": -1.0, "diou": -1.0, "ciou": -2.0}[kind]
    assert (got >= lower - 1e-5).all() and (got <= 1 + 1e-5).all()
    # Tolerance scales with the coordinates: float32 rounds a 1e4 coordinate at ~1e-3.
    torch.testing.assert_close(got.double(), pairwise_reference(b1.double(), b2.double(), kind), atol=2e-3, rtol=0)


def test_matches_torchvision_when_installed(ordinary):
    ops = pytest.importorskip("torchvision.ops")
    b1, b2 = ordinary
    for kind, fn in (("iou", ops.box_iou), ("giou", ops.generalized_box_iou),
                     ("diou", ops.distance_box_iou), ("ciou", ops.complete_box_iou)):
        torch.testing.assert_close(exportloss.pairwise_iou(b1, b2, kind=kind), fn(b1, b2), atol=1e-5, rtol=0)
    n = 23
    for kind, fn in (("giou", ops.generalized_box_iou_loss), ("diou", ops.distance_box_iou_loss),
                     ("ciou", ops.complete_box_iou_loss)):
        torch.testing.assert_close(exportloss.IoULoss(kind, reduction="none")(b1[:n], b2), fn(b1[:n], b2), atol=1e-5, rtol=0)


# --- row tiles and the Max-only extents ------------------------------------------------------------


def test_tile_rows_follow_the_cache_budget():
    from exportloss.boxes.iou import MAX_TILES, tile_rows_for

    assert tile_rows_for(700, 700) == 700  # one 1.9 MiB plane fits a 2 MiB cache: untiled
    assert [tile_rows_for(n, n) for n in (1000, 3000, 4000)] == [256, 80, 64]
    assert tile_rows_for(10_000, 10_000) * MAX_TILES >= 10_000
    assert tile_rows_for(3000, 3000, cache_bytes=1 << 30) == 3000


@pytest.mark.parametrize("kind", KINDS)
def test_tiled_equals_untiled_bit_for_bit_in_eager(kind):
    rng = np.random.default_rng(3)
    b1 = torch.from_numpy(random_boxes(rng, (2, 45, 4)))
    b2 = torch.from_numpy(random_boxes(rng, (1, 31, 4)))
    untiled = exportloss.pairwise_iou(b1, b2, kind, tile_rows=45)
    for rows in (1, 8, 16, 44):
        tiled = exportloss.pairwise_iou(b1, b2, kind, tile_rows=rows)
        assert torch.equal(tiled.view(torch.int32), untiled.view(torch.int32)), rows
    iou, distance = exportloss.pairwise_iou_and_distance(b1, b2, tile_rows=16)
    iou_ref, distance_ref = exportloss.pairwise_iou_and_distance(b1, b2, tile_rows=45)
    assert torch.equal(iou, iou_ref) and torch.equal(distance, distance_ref)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "64"])
def test_tile_rows_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="tile_rows"):
        exportloss.PairwiseIoU("iou", tile_rows=bad)


@pytest.mark.parametrize("kind", KINDS)
def test_tiled_graph_equals_untiled_graph_and_stays_within_the_static_checks(tmp_path, kind):
    """Export the same graph tiled (3 uneven tiles) and untiled: onnxruntime gives the same bits, the tiled
    graph adds only Split/Slice/Concat to the untiled graph's operators (so the TensorRT and CUDA-provider
    tables that accept the untiled graph accept it), has no Loop, and passes every TensorRT table. Per-box
    terms are computed once: the tiled graph holds the untiled graph's nodes plus two more copies of its
    N x M steps (the node count, and so the export time, stays the untiled graph's plus the copies)."""
    import onnx
    import onnxruntime as ort

    from exportloss import catalog
    from exportloss.catalog.boxes import with_tile_rows
    from exportloss.export import export_model
    from exportloss.graph_checks import op_histogram
    from exportloss.trt import check_versions

    entry = catalog.get(f"pairwise_{kind}")
    shapes = entry.shapes({"boxes1": (1, 40, 4), "boxes2": (1, 24, 4)})
    untiled = export_model(with_tile_rows(entry, 40), shapes=shapes)
    tiled = export_model(with_tile_rows(entry, 16), shapes=shapes)
    untiled_ops, tiled_ops = op_histogram(untiled), op_histogram(tiled)
    assert set(tiled_ops) - set(untiled_ops) <= {"Split", "Slice", "Concat"} and tiled_ops["Concat"] >= 1
    assert "Loop" not in tiled_ops
    inferred = onnx.shape_inference.infer_shapes(untiled).graph
    planes = {v.name for v in (*inferred.value_info, *inferred.output)
              if [d.dim_value for d in v.type.tensor_type.shape.dim] == [1, 40, 24]}
    plane_ops = Counter(node.op_type for node in untiled.graph.node if set(node.output) <= planes)
    assert sum(plane_ops.values()) >= 10
    for op in set(tiled_ops) - {"Split", "Concat"}:
        assert tiled_ops[op] == untiled_ops[op] + 2 * plane_ops[op], op
    assert all(report.compatible for report in check_versions(tiled))
    for case in entry.verification_cases(shapes):
        outputs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, case.inputs)[0]
                   for m in (untiled, tiled)]
        assert np.array_equal(outputs[0].view(np.int32), outputs[1].view(np.int32)), case.name


def _today_iou_and_excess(a, b, eps):
    """Frozen copy of the intersection/enclosure formula before the Max-only extents (for the test below)."""
    excess_x = torch.relu(a.x2 - b.x2) + torch.relu(b.x1 - a.x1)
    excess_y = torch.relu(a.y2 - b.y2) + torch.relu(b.y1 - a.y1)
    inter = torch.relu(a.w - excess_x) * torch.relu(a.h - excess_y)
    union_eps = ((a.area + eps) + b.area) - inter
    return inter / union_eps, union_eps, b.w + excess_x, b.h + excess_y


def _today_pairwise(b1, b2, kind, eps=1e-7):
    from exportloss.boxes.formats import box_terms
    from exportloss.boxes.iou import _centre_distance

    a, b = box_terms(b1, "xyxy", eps, kind == "ciou", "column"), box_terms(b2, "xyxy", eps, kind == "ciou", "row")
    iou, union_eps, enclose_w, enclose_h = _today_iou_and_excess(a, b, eps)
    if kind == "iou":
        return iou
    if kind == "giou":
        enclose_area = enclose_w * enclose_h
        return iou - (enclose_area - (union_eps - eps)) / (enclose_area + eps)
    diou = iou - _centre_distance(a, b, enclose_w, enclose_h, eps)
    if kind == "diou":
        return diou
    v = (a.aspect_angle - b.aspect_angle) ** 2
    return diou - (v / ((v + (1.0 - iou)) + eps)) * v  # CIoU's α in its current order (eps last), which this test does not cover


@pytest.mark.parametrize("kind", KINDS)
def test_max_only_extents_equal_the_previous_formula(kind):
    """On integer pixel coordinates (every coordinate difference exact in float32) the Max-only extents give
    today's values exactly, for ordinary, degenerate and far-apart boxes. On arbitrary float coordinates
    each extent is one rounding instead of two, so the results stay within float32 rounding of the previous
    ones and no further from float64."""
    rng = np.random.default_rng(11)
    pixels = torch.from_numpy(np.round(random_boxes(rng, (300, 4), scale=1280.0)))
    degenerate = torch.tensor([pair for pairs in DEGENERATE_PAIRS for pair in pairs])
    for b1, b2 in ((pixels[:170], pixels[170:]), (degenerate, degenerate)):
        assert torch.equal(exportloss.pairwise_iou(b1, b2, kind), _today_pairwise(b1, b2, kind))
    b1 = torch.from_numpy(random_boxes(rng, (150, 4)))
    b2 = torch.from_numpy(random_boxes(rng, (140, 4)))
    new, old = exportloss.pairwise_iou(b1, b2, kind), _today_pairwise(b1, b2, kind)
    torch.testing.assert_close(new, old, atol=1e-6, rtol=0)
    exact = pairwise_reference(b1.double(), b2.double(), kind)
    assert (new.double() - exact).abs().max() <= (old.double() - exact).abs().max() * 1.5 + 1e-7


def test_export_tile_rows_option(tmp_path, capsys):
    import onnx

    from exportloss.cli import main

    shape = ["--shape", "boxes1=1x40x4", "--shape", "boxes2=1x24x4"]
    assert main(["export", "pairwise_iou", *shape, "--tile-rows", "16", "-o", str(tmp_path)]) == 0
    ops = [node.op_type for node in onnx.load(str(tmp_path / "pairwise_iou.onnx")).graph.node]
    assert ops.count("Concat") == 1 and "Split" in ops
    capsys.readouterr()
    for argv, message in ((["pairwise_iou", "--tile-rows", "0"], "argument --tile-rows: expected a positive integer; got 0"),
                          (["focal_loss", "--tile-rows", "8"], "--tile-rows applies to pairwise_iou")):
        assert main(["export", *argv, "-o", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
