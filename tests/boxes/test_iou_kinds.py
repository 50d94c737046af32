"""EIoU, SIoU and α-IoU: equal to mmdet's loss definitions (written out here in float64 numpy from the
formulas in mmdet's documentation and the papers) and to the float64 references; finite gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import exportloss
from exportloss.catalog.boxes import DEGENERATE_PAIRS, random_boxes
from exportloss.reference.boxes import aligned_reference


def mmdet_style_eiou_loss(p: np.ndarray, t: np.ndarray, smooth_point: float = 0.1, eps: float = 1e-7) -> np.ndarray:
    """Extended-IoU with its smooth knee: I_s from the enclosing top-left corner, union = A + B − I_s + eps."""
    ex, ey = np.minimum(p[:, 0], t[:, 0]), np.minimum(p[:, 1], t[:, 1])
    ix1, iy1 = np.maximum(p[:, 0], t[:, 0]), np.maximum(p[:, 1], t[:, 1])
    ix2, iy2 = np.minimum(p[:, 2], t[:, 2]), np.minimum(p[:, 3], t[:, 3])
    inter = ((ix2 - ex) * (iy2 - ey) + (np.minimum(ix1, ix2) - ex) * (np.minimum(iy1, iy2) - ey)
             - (ix1 - ex) * (np.maximum(iy1, iy2) - ey) - (np.maximum(ix1, ix2) - ex) * (iy1 - ey))
    union = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]) + (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) - inter + eps
    l = 1 - inter / union
    return np.where(l < smooth_point, 0.5 * l**2 / smooth_point, l - 0.5 * smooth_point)


def mmdet_style_siou_loss(p: np.ndarray, t: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """SIoU with neg_gamma=True (the paper's sign): eps on heights, centre offsets and the enclosing box."""
    wh = np.clip(np.minimum(p[:, 2:], t[:, 2:]) - np.maximum(p[:, :2], t[:, :2]), 0, None)
    overlap = wh[:, 0] * wh[:, 1]
    union = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]) + (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) - overlap + eps
    iou = overlap / union
    enclose = np.clip(np.maximum(p[:, 2:], t[:, 2:]) - np.minimum(p[:, :2], t[:, :2]), eps, None)
    w1, h1 = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1] + eps
    w2, h2 = t[:, 2] - t[:, 0], t[:, 3] - t[:, 1] + eps
    s_cw = (t[:, 0] + t[:, 2] - p[:, 0] - p[:, 2]) * 0.5 + eps
    s_ch = (t[:, 1] + t[:, 3] - p[:, 1] - p[:, 3]) * 0.5 + eps
    sigma = np.sqrt(s_cw**2 + s_ch**2)
    sin1, sin2 = np.abs(s_cw) / sigma, np.abs(s_ch) / sigma
    sin_alpha = np.where(sin1 > np.sqrt(2) / 2, sin2, sin1)
    angle_cost = np.cos(np.arcsin(sin_alpha) * 2 - np.pi / 2)
    gamma = angle_cost - 2
    dist = 2 - np.exp(gamma * (s_cw / enclose[:, 0]) ** 2) - np.exp(gamma * (s_ch / enclose[:, 1]) ** 2)
    shape = (1 - np.exp(-np.abs(w1 - w2) / np.maximum(w1, w2))) ** 4 + (1 - np.exp(-np.abs(h1 - h2) / np.maximum(h1, h2))) ** 4
    return 1 - np.clip(iou - 0.5 * (dist + shape), -1, 1)


@pytest.fixture
def pairs():
    rng = np.random.default_rng(0)
    return random_boxes(rng, (2000, 4)), random_boxes(rng, (2000, 4))


def test_eiou_loss_equals_mmdet_definition(pairs):
    p, t = pairs
    got = exportloss.IoULoss("eiou", reduction="none")(torch.from_numpy(p), torch.from_numpy(t)).double().numpy()
    assert np.abs(got - mmdet_style_eiou_loss(p.astype(np.float64), t.astype(np.float64))).max() <= 1e-5
    assert (exportloss.aligned_iou(torch.from_numpy(p), torch.from_numpy(t), "eiou") < 0).any()  # disjoint pairs


def test_siou_loss_equals_mmdet_definition(pairs):
    p, t = pairs
    got = exportloss.IoULoss("siou", reduction="none")(torch.from_numpy(p), torch.from_numpy(t)).double().numpy()
    assert np.abs(got - mmdet_style_siou_loss(p.astype(np.float64), t.astype(np.float64))).max() <= 1e-5


@pytest.mark.parametrize("alpha", [1.0, 3.0, 0.5])
def test_alpha_iou_is_a_power_of_iou(pairs, alpha):
    p, t = (torch.from_numpy(x) for x in pairs)
    iou = exportloss.aligned_iou(p, t).double()
    got = exportloss.IoULoss("alpha_iou", reduction="none", alpha=alpha)(p, t).double()
    assert torch.allclose(got, 1 - iou.clamp(min=1e-7) ** alpha, atol=1e-6)


@pytest.mark.parametrize("kind", ["eiou", "siou", "alpha_iou"])
def test_new_kinds_match_the_reference_pairwise_and_aligned(pairs, kind):
    p, t = (torch.from_numpy(x[:300]) for x in pairs)
    assert (exportloss.aligned_iou(p, t, kind).double() - aligned_reference(p, t, kind)).abs().max() <= 1e-5
    pair = exportloss.pairwise_iou(p[:40], t[:30], kind)
    assert torch.equal(pair, exportloss.aligned_iou(p[:40, None], t[None, :30], kind))


@pytest.mark.parametrize("kind", ["eiou", "siou", "alpha_iou"])
def test_new_kinds_have_finite_values_and_gradients_on_degenerate_boxes(kind):
    a = torch.tensor([x for x, _ in DEGENERATE_PAIRS], requires_grad=True)
    b = torch.tensor([y for _, y in DEGENERATE_PAIRS], requires_grad=True)
    loss = exportloss.IoULoss(kind, reduction="sum", alpha=0.5)(a, b) + exportloss.pairwise_iou(a, b, kind).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def test_alpha_must_be_positive():
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        exportloss.IoULoss("alpha_iou", alpha=0)


@pytest.mark.parametrize("alpha", [-1.0, 0.0, float("nan"), float("inf"), True])
@pytest.mark.parametrize("function", ["aligned_iou", "pairwise_iou"])
def test_functions_check_alpha_as_the_modules_do(function, alpha):
    """Issue 22, finding 3: aligned_iou(kind="alpha_iou", alpha=-1) gave 2.0 and alpha=0 gave 1.0; IoULoss refused them."""
    import exportloss

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [2.0, 2.0, 8.0, 12.0]])
    with pytest.raises((ValueError, TypeError), match="alpha"):
        getattr(exportloss, function)(boxes, boxes, kind="alpha_iou", alpha=alpha)
    with pytest.raises((ValueError, TypeError), match="alpha"):
        exportloss.IoULoss("alpha_iou", alpha=alpha)
