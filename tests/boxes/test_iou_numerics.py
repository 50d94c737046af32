"""The IoU family's numerics: the Atan-free angle, fp16/bf16 in pixel coordinates, eps checks, degenerate gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exportloss.boxes import formats as box_ops
from exportloss.boxes.iou import AlignedIoU, PairwiseIoU, aligned_iou, pairwise_iou
from exportloss.boxes.iou_loss import IoULoss

KINDS = ("iou", "giou", "diou", "ciou")
MAX_ULPS = 3.0
"""atan_ratio's error bound in float32 ulps of the result (torch.atan of the rounded ratio reaches 1.3)."""


def ulps_off(got: np.ndarray, exact: np.ndarray) -> float:
    return float((np.abs(got - exact) / np.spacing(np.abs(exact).astype(np.float32))).max())


@pytest.mark.parametrize("reflect", [False, True])
def test_atan_ratio_is_float32_accurate_from_1e_minus_30_to_1e30(reflect):
    ratios = np.logspace(-30, 30, 20001, dtype=np.float64).astype(np.float32)
    random = np.random.default_rng(11).uniform(0, 8, 20000).astype(np.float32)
    num = np.concatenate([ratios, random, [0.0, 1.0]]).astype(np.float32)
    den = np.ones_like(num)
    if reflect:
        num, den = den, np.where(num > 0, num, 1).astype(np.float32)
    got = box_ops.atan_ratio(torch.from_numpy(num), torch.from_numpy(den)).numpy()
    exact = np.arctan(num.astype(np.float64) / den.astype(np.float64))
    assert ulps_off(got, exact) <= MAX_ULPS


def test_atan_ratio_float64_matches_to_the_fit():
    t = torch.linspace(0, 50, 10001, dtype=torch.float64)
    assert torch.allclose(box_ops.atan_ratio(t, torch.ones_like(t)), torch.atan(t), rtol=3e-9, atol=0)


@pytest.mark.parametrize("box", [[0, 0, 0, 5], [0, 0, 5, 0], [0, 0, 0, 0], [3, 3, 3, 3]])
def test_ciou_gradients_are_finite_on_zero_width_height_or_both(box):
    pred = torch.tensor([box], dtype=torch.float32, requires_grad=True)
    targets = torch.tensor([box, [0, 0, 4, 7], [1, 1, 1, 1]], dtype=torch.float32)
    for target in targets:
        pred.grad = None
        value = aligned_iou(pred, target[None], "ciou")
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", KINDS)
def test_half_precision_boxes_in_pixels_are_computed_in_float32(dtype, kind):
    gen = torch.Generator().manual_seed(3)
    xy = torch.rand(64, 2, generator=gen) * 3000
    wh = torch.rand(64, 2, generator=gen) * 1096 + 1
    b1 = torch.cat([xy, xy + wh], -1)
    b2 = b1 + torch.randn(64, 4, generator=gen) * 20
    b2 = torch.cat([b2[:, :2], torch.maximum(b2[:, 2:], b2[:, :2])], -1).clamp(0, 4096)
    b1[0] = b2[0] = torch.tensor([0.0, 0.0, 4096.0, 4096.0])  # the largest box, identical pair
    half1 = b1.to(dtype).requires_grad_()
    half2 = b2.to(dtype)
    aligned = aligned_iou(half1, half2, kind)
    pairwise = pairwise_iou(half1, half2, kind)
    assert aligned.dtype == pairwise.dtype == dtype
    (aligned.sum() + pairwise.sum()).backward()
    assert torch.isfinite(aligned).all() and torch.isfinite(pairwise).all() and torch.isfinite(half1.grad).all()
    exact = aligned_iou(half1.detach().double(), half2.double(), kind)
    tolerance = 1e-3 if dtype == torch.float16 else 8e-3  # one rounding of a value in [-1, 1] to the dtype
    assert torch.allclose(aligned.double(), exact, atol=tolerance, rtol=0)
    assert aligned[0].item() == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_ciou_of_identical_boxes_equals_their_iou_in_every_dtype(dtype):
    """α = v / ((v + (1 - IoU)) + eps) = 0 / eps: no 0/0 even where 1 + eps rounds to 1 (fp16, bf16)."""
    boxes = torch.tensor([[10.0, 20.0, 50.0, 90.0], [0.0, 0.0, 4096.0, 4096.0], [5.0, 5.0, 5.0, 9.0]], dtype=dtype)
    boxes.requires_grad_()
    value = aligned_iou(boxes, boxes.detach(), "ciou")
    value[:2].sum().backward()
    assert torch.equal(value, aligned_iou(boxes.detach(), boxes.detach(), "iou"))
    assert value[:2].tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert torch.isfinite(boxes.grad).all()
    assert torch.isfinite(IoULoss("ciou")(boxes.detach(), boxes.detach())).all()


@pytest.mark.parametrize("eps", [0, -1e-7, float("nan"), float("inf")])
def test_eps_must_be_positive_and_finite(eps):
    boxes = torch.rand(3, 4)
    for call in (lambda: pairwise_iou(boxes, boxes, eps=eps), lambda: aligned_iou(boxes, boxes, eps=eps),
                 lambda: PairwiseIoU(eps=eps), lambda: AlignedIoU(eps=eps), lambda: IoULoss(eps=eps)):
        with pytest.raises(ValueError, match="eps must be finite and > 0"):
            call()
    with pytest.raises(TypeError, match="eps must be a number"):
        IoULoss(eps="1e-7")


def test_giou_gradient_on_identical_zero_height_boxes_is_finite_and_bounded_by_side_over_eps():
    """The documented reason for the large gradient: with zero-area boxes the GIoU penalty
    ``(C - U) / (C + eps)`` goes from 0 to about 1 when one box moves by eps/side, so its slope there is
    side/eps (exact GIoU is 0/0 at that point; torchvision gives NaN). It is that slope, never more."""
    eps = 1e-7
    for side in (1.0, 10.0, 640.0):
        pred = torch.tensor([[0.0, 0.0, side, 0.0]], requires_grad=True)
        value = aligned_iou(pred, pred.detach(), "giou", eps=eps)
        value.sum().backward()
        assert value.item() == 0.0
        assert torch.isfinite(pred.grad).all()
        assert pred.grad.abs().max().item() <= side / eps
        # The slope is real: a shift of 10·eps/side along y changes the value by about 1.
        moved = aligned_iou(pred.detach() + torch.tensor([0, 10 * eps / side, 0, 10 * eps / side]), pred.detach(), "giou", eps=eps)
        assert moved.item() < -0.5


# Issue 22, finding 1: graph and reference put eps at the same places, also on normalised coordinates.

SMALL_BOX_KINDS = ("siou", "diou", "ciou", "eiou")


def _normalised_pairs(n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    from exportloss.catalog.boxes import normalised_boxes

    rng = np.random.default_rng(22)
    return torch.from_numpy(normalised_boxes(rng, (n, 4))), torch.from_numpy(normalised_boxes(rng, (n, 4)))


@pytest.mark.parametrize("kind", ("iou", "giou", "alpha_iou", *SMALL_BOX_KINDS))
def test_graph_module_equals_its_reference_on_boxes_1e_minus_4_wide(kind):
    from exportloss.reference.boxes import aligned_reference, pairwise_reference

    a, b = _normalised_pairs()
    want = aligned_reference(a, b, kind)
    got = aligned_iou(a, b, kind).double()
    assert torch.all((got - want).abs() <= 1e-5 + 1e-5 * want.abs()), float((got - want).abs().max())
    want = pairwise_reference(a[None, :60], b[None, :50], kind)
    got = pairwise_iou(a[None, :60], b[None, :50], kind).double()
    assert torch.all((got - want).abs() <= 1e-5 + 1e-5 * want.abs()), float((got - want).abs().max())


@pytest.mark.parametrize("kind", ("siou", "diou"))
def test_the_normalised_edge_case_sees_where_eps_enters(kind):
    """The catalog's normalised-small case is sensitive to eps: a reference without it would fail verification."""
    from exportloss.reference.boxes import aligned_reference

    a, b = _normalised_pairs()
    assert float((aligned_reference(a, b, kind) - aligned_reference(a, b, kind, eps=1e-30)).abs().max()) > 1e-2


def test_centre_offsets_keep_their_digits_on_normalised_coordinates():
    a, b = _normalised_pairs()
    dx, _ = box_ops.centre_offsets(box_ops.box_terms(a, "xyxy", 1e-7, False), box_ops.box_terms(b, "xyxy", 1e-7, False))
    a64, b64 = a.double(), b.double()
    exact = (b64[:, 0] + b64[:, 2]) / 2 - (a64[:, 0] + a64[:, 2]) / 2
    assert float(((dx.double() - exact).abs() / exact.abs().clamp_min(1e-12)).max()) < 5e-7


@pytest.mark.parametrize("kind", SMALL_BOX_KINDS)
def test_catalog_box_graphs_verify_boxes_1e_minus_4_wide(exported, kind):
    """The reproduction: the exported graph against its reference on the normalised-small case (SIoU was 8.7e-2 off)."""
    from exportloss import catalog
    from exportloss.verify import verify

    for name in (f"pairwise_{kind}", f"aligned_{kind}", f"{kind}_loss"):
        assert "normalised-small" in [case.name for case in catalog.get(name).verification_cases()], name
    rows = verify(exported(f"aligned_{kind}"))
    assert rows and all(row.passed for row in rows), [row.failures for row in rows]
