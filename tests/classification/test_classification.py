"""Focal, sigmoid focal, center and ArcFace/CosFace losses against independent float64 math and hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import exportloss
from exportloss import catalog
from exportloss.classification.arcface import log_sum_exp_of_others
from exportloss.catalog.classification import focal_entry
from exportloss.export import export_graph
from exportloss.graph_checks import banned_ops
from exportloss.reference.classification import (
    arc_softmax_reference,
    arcface_loss_reference,
    center_loss_reference,
    center_update_reference,
    focal_reference,
    sigmoid_focal_reference,
)
from exportloss.verify import verify

GRAPHS = ("focal_loss", "sigmoid_focal_loss", "center_loss", "center_update", "arc_softmax", "arcface_loss", "cosface_loss")


def close(got: torch.Tensor, want: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    torch.testing.assert_close(got.double(), want.double(), atol=atol, rtol=rtol)


# --- focal ---------------------------------------------------------------------------------------

def focal_by_cross_entropy(logits, labels, alpha, gamma):
    """Per-element focal loss from torch's float64 cross-entropy: ce = -log p_y, loss = alpha_y (1 - e^-ce)^gamma ce."""
    ce = F.cross_entropy(logits.double().reshape(-1, logits.shape[-1]), labels.reshape(-1).long(), reduction="none")
    return (torch.as_tensor(alpha, dtype=torch.float64)[labels.reshape(-1).long()] * (1 - torch.exp(-ce)) ** gamma * ce).reshape(labels.shape)


@pytest.mark.parametrize("shape", [(16,), (4, 12)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_focal_matches_cross_entropy_form(shape, reduction):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(*shape, 7, generator=g) * 4
    labels = torch.randint(0, 7, shape, generator=g)
    alpha = [0.25] + [0.75] * 6  # the scalar 0.25: class 0 (background) gets alpha
    per_element = focal_by_cross_entropy(logits, labels, alpha, 2.0)
    want = {"none": per_element, "sum": per_element.sum(), "mean": per_element.mean()}[reduction]
    close(exportloss.FocalLoss(7, alpha=0.25, reduction=reduction)(logits, labels), want)
    close(focal_reference(logits.double(), labels, alpha, 2.0, reduction), want, atol=1e-12, rtol=1e-12)


def test_focal_hand_worked_two_classes():
    # Equal logits: p_y = 1/2, so loss = alpha_y * (1/2)^2 * log 2 with alpha = [0.25, 0.75].
    loss = exportloss.FocalLoss(2, alpha=0.25, reduction="none")(torch.zeros(2, 2), torch.tensor([0, 1]))
    close(loss, torch.tensor([0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)]))


def test_focal_alpha_list_and_gamma_zero_is_weighted_cross_entropy():
    g = torch.Generator().manual_seed(2)
    logits, labels = torch.randn(32, 5, generator=g), torch.randint(0, 5, (32,), generator=g, dtype=torch.int32)
    alpha = [0.1, 0.2, 0.3, 0.4, 0.5]
    ce = F.cross_entropy(logits.double(), labels.long(), reduction="none")
    got = exportloss.FocalLoss(5, alpha=alpha, gamma=0.0, reduction="none")(logits, labels)
    close(got, torch.tensor(alpha, dtype=torch.float64)[labels.long()] * ce)


def test_focal_ignore_index_masks_instead_of_dropping():
    g = torch.Generator().manual_seed(3)
    logits, labels = torch.randn(6, 10, 4, generator=g), torch.randint(0, 4, (6, 10), generator=g)
    labels[:, ::3] = 2
    kept = labels != 2
    per_element = focal_by_cross_entropy(logits[kept], labels[kept], [0.25, 0.75, 0.75, 0.75], 2.0)
    loss = exportloss.FocalLoss(4, ignore_index=2, reduction="none")(logits, labels)
    assert loss.shape == labels.shape and (loss[~kept] == 0).all()
    close(exportloss.FocalLoss(4, ignore_index=2)(logits, labels), per_element.mean())
    close(exportloss.FocalLoss(4, ignore_index=2, reduction="sum")(logits, labels), per_element.sum())
    all_ignored = torch.full_like(labels, 255)
    assert exportloss.FocalLoss(4, ignore_index=255)(logits, all_ignored).item() == 0.0


def test_focal_saturated_logits_are_finite_and_exact():
    logits = torch.tensor([[50.0, -50.0, -50.0], [-50.0, 50.0, -50.0], [50.0, 50.0, -50.0]])
    labels = torch.tensor([0, 0, 2])
    loss = exportloss.FocalLoss(3, reduction="none")(logits.requires_grad_(True), labels)
    # Row 0: p_y = 1 -> 0. Row 1: log p_y = -100 (to 1e-43), (1 - p_y)^2 = 1 -> 0.25 * 100. Row 2: log p_y = -100 - log 2.
    close(loss, torch.tensor([0.0, 25.0, 0.75 * (100 + math.log(2))]))
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


# --- sigmoid focal ---------------------------------------------------------------------------------

def torchvision_sigmoid_focal(x, t, alpha, gamma):
    """torchvision.ops.sigmoid_focal_loss's formula, in float64."""
    x, t = x.double(), t.double()
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


@pytest.mark.parametrize("alpha", [0.25, -1.0, 0.9])
@pytest.mark.parametrize("gamma", [2.0, 0.0, 1.5])
def test_sigmoid_focal_matches_torchvision_formula(alpha, gamma):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 40, 6, generator=g) * 5
    t = (torch.rand(3, 40, 6, generator=g) < 0.3).float()
    t[0] = torch.rand(40, 6, generator=g)  # soft targets follow the same formula
    want = torchvision_sigmoid_focal(x, t, alpha, gamma)
    close(exportloss.SigmoidFocalLoss(alpha, gamma)(x, t), want)
    close(exportloss.SigmoidFocalLoss(alpha, gamma, reduction="mean")(x, t), want.mean())
    close(exportloss.SigmoidFocalLoss(alpha, gamma, reduction="sum")(x, t), want.sum(), rtol=1e-5)
    close(sigmoid_focal_reference(x.double(), t, alpha, gamma), want, atol=1e-12, rtol=1e-10)


def test_sigmoid_focal_large_logits():
    x = torch.tensor([50.0, -50.0, 50.0, -50.0, 1e4, -1e4])
    t = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    # Agreeing: ~0. Disagreeing: ce = |x| and (1 - p_t) = 1, weighted by 1 - alpha (negative) or alpha (positive).
    want = torch.tensor([0.0, 0.0, 0.75 * 50, 0.25 * 50, 0.75 * 1e4, 0.25 * 1e4])
    close(exportloss.SigmoidFocalLoss()(x, t), want)


def test_sigmoid_focal_matches_torchvision_when_installed():
    ops = pytest.importorskip("torchvision.ops")
    g = torch.Generator().manual_seed(5)
    x, t = torch.randn(200, generator=g) * 4, (torch.rand(200, generator=g) < 0.5).float()
    close(exportloss.SigmoidFocalLoss()(x, t), ops.sigmoid_focal_loss(x, t))


# --- center loss -----------------------------------------------------------------------------------

def center_loss_by_bincount(features, labels, centers, lambda_c):
    f, c = features.double(), centers.double()
    counts = torch.bincount(labels.long(), minlength=c.shape[0]).double()
    return lambda_c / 2 * (((f - c[labels.long()]) ** 2).sum(1) / counts[labels.long()]).mean()


def test_center_loss_matches_independent_math():
    g = torch.Generator().manual_seed(6)
    module = exportloss.CenterLoss(10, 8, lambda_c=0.3)
    features, labels = torch.randn(50, 8, generator=g), torch.randint(0, 10, (50,), generator=g)
    want = center_loss_by_bincount(features, labels, module.centers.detach(), 0.3)
    close(module(features, labels), want)
    close(module(features, labels.int()), want)
    close(center_loss_reference(features.double(), labels, module.centers.detach(), 0.3), want, atol=1e-12, rtol=1e-12)


def test_center_loss_hand_worked():
    module = exportloss.CenterLoss(3, 2)
    with torch.no_grad():
        module.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]))
    features = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]])
    labels = torch.tensor([0, 0, 1])
    # Class 0 (n=2): 25/2 and 0/2; class 1 (n=1): 1; class 2 absent. 1/2 * mean = 1/2 * 13.5/3.
    assert module(features, labels).item() == pytest.approx(0.5 * 13.5 / 3)
    assert module(module.centers.detach()[[2, 2]], torch.tensor([2, 2])).item() == 0.0  # all in one class, at its center


def test_center_loss_gradient_reaches_centers_of_present_classes_only():
    module = exportloss.CenterLoss(4, 3)
    module(torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 1, 3])).backward()
    norms = module.centers.grad.norm(dim=1)
    assert (norms[[0, 1, 3]] > 0).all() and norms[2] == 0


def center_update_by_loops(features, labels, centers, alpha):
    new = centers.double().clone()
    for j in range(centers.shape[0]):
        members = labels == j
        n = int(members.sum())
        new[j] -= alpha * (n * centers[j].double() - features[members].double().sum(0)) / (1 + n)
    return new


def test_center_update_is_eq4():
    g = torch.Generator().manual_seed(7)
    centers = torch.randn(6, 5, generator=g)
    features = torch.randn(20, 5, generator=g)
    labels = torch.randint(0, 4, (20,), generator=g)  # classes 4 and 5 absent
    got = exportloss.center_update(features, labels, centers, alpha=0.5)
    want = center_update_by_loops(features, labels, centers, 0.5)
    close(got, want)
    assert torch.equal(got[4:], centers[4:])
    close(center_update_reference(features.double(), labels, centers, 0.5), want, atol=1e-12, rtol=1e-12)
    one_class = exportloss.CenterUpdate(alpha=1.0)(features, torch.full((20,), 2), centers)
    # n = 20 samples of class 2: c <- c - (20 c - sum f) / 21 = (c + sum f) / 21
    close(one_class[2], (centers[2].double() + features.double().sum(0)) / 21)


def test_update_centers_in_place():
    module = exportloss.CenterLoss(3, 2)
    before = module.centers.detach().clone()
    features, labels = torch.randn(5, 2), torch.tensor([0, 0, 1, 1, 1])
    module.update_centers(features, labels, alpha=0.5)
    close(module.centers.detach(), center_update_by_loops(features, labels, before, 0.5))


# --- ArcFace / CosFace -----------------------------------------------------------------------------

def arcsoftmax_literal(features, weight, s, m, margin="arcface"):
    """The seed's formula taken literally in float64, with θ from acos and the insightface fallback."""
    x = features.double() / features.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
    w = weight.double() / weight.double().norm(dim=0, keepdim=True).clamp_min(1e-12)
    cos = (x @ w).clamp(-1, 1)
    theta = torch.acos(cos)
    if margin == "arcface":
        phi = torch.where(theta + m <= math.pi, torch.cos(theta + m), cos - m * math.sin(m))
    else:
        phi = cos - m
    total = torch.exp(s * cos).sum(1, keepdim=True)
    return torch.exp(s * phi) / (total - torch.exp(s * cos) + torch.exp(s * phi))


@pytest.mark.parametrize("margin, m", [("arcface", 0.5), ("cosface", 0.35)])
def test_arc_softmax_matches_literal_formula(margin, m):
    g = torch.Generator().manual_seed(8)
    head = exportloss.ArcSoftmax(16, 12, s=8.0, m=m, margin=margin)
    features = torch.randn(40, 16, generator=g)
    want = arcsoftmax_literal(features, head.weight.detach(), 8.0, m, margin)
    close(head(features), want)
    close(arc_softmax_reference(features.double(), head.weight.detach(), 8.0, m, margin), want, atol=1e-12, rtol=1e-10)


def test_arc_softmax_hand_worked_including_fallback():
    head = exportloss.ArcSoftmax(2, 2, s=2.0, m=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    # Feature along class 0: cos = (1, 0); φ = (cos 0.5, cos(π/2 + 0.5)) = (cos 0.5, -sin 0.5).
    p = head(torch.tensor([[3.0, 0.0]]))[0]
    assert p[0].item() == pytest.approx(math.exp(2 * math.cos(0.5)) / (1 + math.exp(2 * math.cos(0.5))), abs=1e-6)
    assert p[1].item() == pytest.approx(math.exp(-2 * math.sin(0.5)) / (math.exp(2) + math.exp(-2 * math.sin(0.5))), abs=1e-6)
    # θ = 2.9 from class 0: θ + m > π, so φ = cos θ - m sin m (the th/mm fallback).
    theta = 2.9
    p = head(torch.tensor([[math.cos(theta), math.sin(theta)]]))[0]
    phi = math.cos(theta) - 0.5 * math.sin(0.5)
    want = math.exp(2 * phi) / (math.exp(2 * math.sin(theta)) + math.exp(2 * phi))
    assert p[0].item() == pytest.approx(want, rel=1e-5)


def test_arc_softmax_at_s64_without_overflow_or_cancellation():
    head = exportloss.ArcSoftmax(4, 3, s=64.0, m=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.eye(4, 3))
    # cos θ = (0.3, -0.2, -0.2). Class 0's entry needs the others' sum 2 e^{-12.8} next to e^{19.2}:
    # sum-minus-own cancels it to 0 in float32 (P_0 would be 1), the true P_0 is about 0.42.
    cos = [0.3, -0.2, -0.2]
    feature = torch.tensor([[*cos, math.sqrt(1 - sum(c * c for c in cos))]]) * 5
    want = []
    for j, c in enumerate(cos):
        own = math.exp(64 * math.cos(math.acos(c) + 0.5))
        want.append(own / (math.fsum(math.exp(64 * ck) for k, ck in enumerate(cos) if k != j) + own))
    assert 0.3 < want[0] < 0.6
    got = head(feature)[0]
    assert torch.isfinite(got).all()
    close(got, torch.tensor(want), atol=0, rtol=1e-4)


def test_log_sum_exp_of_others_exact_when_one_entry_dominates():
    z = torch.tensor([[60.0, 0.0, -19.0, 60.0], [-64.0, -64.0, 64.0, 30.0]], dtype=torch.float32)
    want = torch.stack([torch.logsumexp(torch.cat([z.double()[:, :j], z.double()[:, j + 1:]], 1), 1) for j in range(4)], 1)
    close(log_sum_exp_of_others(z), want, atol=1e-5, rtol=1e-6)


def test_zero_features_have_cos_zero_and_finite_gradients():
    head = exportloss.ArcSoftmax(8, 5, s=64.0, m=0.5)
    features = torch.zeros(3, 8, requires_grad=True)
    p = head(features)
    # cos θ = 0 for every class: P = e^{-64 sin m} / (4 + e^{-64 sin m}).
    close(p, torch.full((3, 5), math.exp(-64 * math.sin(0.5)) / (4 + math.exp(-64 * math.sin(0.5)))), atol=0, rtol=1e-5)
    p.sum().backward()
    assert torch.isfinite(features.grad).all() and torch.isfinite(head.weight.grad).all()
    loss_head = exportloss.ArcFaceLoss(8, 5)
    features.grad = None
    loss = loss_head(features, torch.tensor([0, 2, 4]))
    assert loss.item() == pytest.approx(math.log(4 * math.exp(64 * math.sin(0.5)) + 1), rel=1e-6)
    loss.backward()
    assert torch.isfinite(features.grad).all()


def margined_cross_entropy(features, labels, weight, s, m, margin):
    """F.cross_entropy of s·cos θ with the label's logit replaced by s·φ, in float64, θ from acos."""
    x = F.normalize(features.double(), dim=1)
    w = F.normalize(weight.double(), dim=0)
    cos = (x @ w).clamp(-1, 1)
    theta = torch.acos(cos)
    if margin == "arcface":
        phi = torch.where(theta + m <= math.pi, torch.cos(theta + m), cos - m * math.sin(m))
    else:
        phi = cos - m
    onehot = F.one_hot(labels.long(), weight.shape[1]).bool()
    return F.cross_entropy(s * torch.where(onehot, phi, cos), labels.long(), reduction="none")


@pytest.mark.parametrize("loss_cls, margin, m", [(exportloss.ArcFaceLoss, "arcface", 0.5), (exportloss.CosFaceLoss, "cosface", 0.35)])
def test_margin_losses_match_cross_entropy_and_arc_softmax(loss_cls, margin, m):
    g = torch.Generator().manual_seed(9)
    module = loss_cls(32, 50)
    features = torch.randn(24, 32, generator=g)
    labels = torch.randint(0, 50, (24,), generator=g)
    labels[:2] = torch.tensor([0, 49])
    features[2] = module.weight.detach()[:, labels[2]] * 7  # cos ≈ 1 with its class
    features[3] = -module.weight.detach()[:, labels[3]]  # cos ≈ -1: θ + m > π
    per_sample = margined_cross_entropy(features, labels, module.weight.detach(), 64.0, m, margin)
    close(module(features, labels), per_sample.mean(), atol=1e-4, rtol=1e-5)
    none = loss_cls(32, 50, reduction="none")
    none.load_state_dict(module.state_dict())
    close(none(features, labels.int()), per_sample, atol=1e-4, rtol=1e-5)
    head = exportloss.ArcSoftmax(32, 50, m=m, margin=margin)
    head.load_state_dict(module.state_dict())
    picked = head(features).double()[torch.arange(24), labels]
    close(picked, torch.exp(-per_sample), atol=1e-7, rtol=1e-4)  # P_{i,3} ~ e^-107 underflows in float32; the loss does not
    close(arcface_loss_reference(features.double(), labels, module.weight.detach(), 64.0, m, margin), per_sample.mean(), atol=1e-9, rtol=1e-9)


def test_arcface_gradient_finite_at_cos_one():
    module = exportloss.ArcFaceLoss(4, 3)
    features = module.weight.detach()[:, :3].t().clone().requires_grad_(True)
    module(features, torch.tensor([0, 1, 2])).backward()
    assert torch.isfinite(features.grad).all() and torch.isfinite(module.weight.grad).all()


# --- fuzzing -------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([1.0, 10.0, 60.0]), st.sampled_from([0.0, 0.5, 2.0]))
def test_fuzz_focal_against_reference(seed, scale, gamma):
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.normal(0, scale, (5, 9, 6)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 6, (5, 9)))
    module = exportloss.FocalLoss(6, alpha=rng.uniform(0, 1, 6).tolist(), gamma=gamma, reduction="none")
    got = module(logits, labels)
    assert torch.isfinite(got).all()
    close(got, focal_reference(logits.double(), labels, module.alpha.tolist(), gamma, "none"), atol=1e-5 * scale, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([("arcface", 0.5), ("arcface", 1.2), ("cosface", 0.35)]))
def test_fuzz_arc_against_reference(seed, margin_and_m):
    margin, m = margin_and_m
    rng = np.random.default_rng(seed)
    head = exportloss.ArcSoftmax(6, 7, s=64.0, m=m, margin=margin)
    features = rng.normal(0, 1, (9, 6)) * rng.choice([0.0, 1e-3, 1.0, 1e3], size=(9, 1))
    features = torch.from_numpy(features.astype(np.float32))
    got = head(features)
    assert torch.isfinite(got).all() and (got >= 0).all() and (got <= 1).all()
    want = arc_softmax_reference(features.double(), head.weight.detach(), 64.0, m, margin)
    # float32 cosines carry ~1e-7 error, which s = 64 turns into a relative error of ~1e-5 in P.
    close(got, want, atol=1e-6, rtol=2e-4)


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, message", [
    (lambda: exportloss.FocalLoss(3)(torch.randn(4, 3), torch.tensor([0, 1, 2, 3])), ValueError, r"labels must lie in \[0, 2\]; got values in \[0, 3\]"),
    (lambda: exportloss.FocalLoss(3)(torch.randn(4, 3), torch.tensor([0, -1, 2, 1])), ValueError, r"labels must lie in \[0, 2\]"),
    (lambda: exportloss.FocalLoss(3, ignore_index=-1)(torch.randn(4, 3), torch.tensor([0, -2, 2, 1])), ValueError, r"or ignore_index=-1"),
    (lambda: exportloss.FocalLoss(3, alpha=[0.2, 0.8]), ValueError, r"alpha as a list must have one weight per class \(length num_classes=3\); got length 2"),
    (lambda: exportloss.FocalLoss(3, alpha=1.5), ValueError, r"alpha must be finite and lie in \[0, 1\]"),
    (lambda: exportloss.FocalLoss(3, gamma=-1), ValueError, r"gamma must be finite and >= 0"),
    (lambda: exportloss.FocalLoss(3)(torch.randn(4, 3), torch.tensor([0.0, 1.0, 2.0, 1.0])), TypeError, r"labels must be an int64 or int32 tensor"),
    (lambda: exportloss.FocalLoss(3)(torch.randn(4, 3), torch.tensor([0, 1, 2])), ValueError, r"labels must have the shape of logits without the class axis, \[4\]; got \[3\]"),
    (lambda: exportloss.FocalLoss(3)(torch.randn(4, 5), torch.tensor([0, 1, 2, 1])), ValueError, r"logits must have shape \[B, \.\.\., num_classes=3\]; got \[4, 5\]"),
    (lambda: exportloss.FocalLoss(3, reduction="avg"), ValueError, r"reduction must be one of"),
    (lambda: exportloss.SigmoidFocalLoss()(torch.randn(4, 3), torch.ones(4, 2)), ValueError, r"logits and targets must have the same shape"),
    (lambda: exportloss.SigmoidFocalLoss()(torch.randn(4), torch.ones(4, dtype=torch.int64)), TypeError, r"targets must be a floating-point tensor"),
    (lambda: exportloss.CenterLoss(3, 2)(torch.randn(4, 2), torch.tensor([0, 1, 2])), ValueError, r"labels must have shape \[B\] with B=4"),
    (lambda: exportloss.CenterLoss(3, 2)(torch.randn(4, 5), torch.tensor([0, 1, 2, 0])), ValueError, r"features must have shape \[B, feat_dim=2\]; got \[4, 5\]"),
    (lambda: exportloss.CenterLoss(3, 2)(torch.randn(2, 2), torch.tensor([0, 3])), ValueError, r"labels must lie in \[0, 2\]"),
    (lambda: exportloss.CenterLoss(3, 2)(torch.randn(2, 2), torch.tensor([0.0, 1.0])), TypeError, r"labels must be an int64 or int32"),
    (lambda: exportloss.center_update(torch.randn(2, 2), torch.tensor([0, 1]), torch.randn(3)), ValueError, r"centers must have shape \[num_classes, feat_dim\]"),
    (lambda: exportloss.center_update(torch.randn(2, 2), torch.tensor([0, 5]), torch.randn(3, 2)), ValueError, r"labels must lie in \[0, 2\]"),
    (lambda: exportloss.ArcFaceLoss(4, 3)(torch.randn(2, 4), torch.tensor([0, 3])), ValueError, r"labels must lie in \[0, 2\]"),
    (lambda: exportloss.ArcFaceLoss(4, 3)(torch.randn(2, 4), torch.tensor([0, 1, 2])), ValueError, r"labels must have shape \[B\] with B=2"),
    (lambda: exportloss.ArcFaceLoss(4, 3)(torch.randn(2, 4), torch.tensor([0.0, 1.0])), TypeError, r"labels must be an int64 or int32"),
    (lambda: exportloss.ArcSoftmax(4, 3)(torch.randn(2, 5)), ValueError, r"features must have shape \[B, feat_dim=4\]; got \[2, 5\]"),
    (lambda: exportloss.ArcSoftmax(4, 1), ValueError, r"num_classes must be >= 2; got 1"),
    (lambda: exportloss.ArcSoftmax(4, 3, m=4.0), ValueError, r"m must be finite and lie in \[0, 3.14159\)"),
    (lambda: exportloss.ArcSoftmax(4, 3, margin="sphereface"), ValueError, r"margin must be one of 'arcface', 'cosface'"),
    (lambda: exportloss.ArcFaceLoss(4, 3, s=0), ValueError, r"s must be finite and > 0"),
])
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- exported graphs -----------------------------------------------------------------------------

@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("name", GRAPHS)
def test_graphs_use_no_banned_operators(exported, name, exporter):
    model = onnx.load(str(exported(name, exporter)))
    assert banned_ops(model) == []
    graph_inputs = {value.name for value in model.graph.input}
    if name in ("center_loss", "arc_softmax", "arcface_loss", "cosface_loss"):
        # Centers / class weights travel inside the one file as initializers, not as inputs.
        assert any(len(init.dims) == 2 for init in model.graph.initializer)
        assert graph_inputs == {spec.name for spec in catalog.get(name).inputs}


def run_graph(path, **inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: np.ascontiguousarray(v) for k, v in inputs.items()})[0]


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_graph_treats_out_of_range_labels_as_absent(exported, exporter):
    rng = np.random.default_rng(11)
    logits = rng.normal(0, 2, (8, 64, 21)).astype(np.float32)
    labels = rng.integers(0, 21, (8, 64))
    bad = labels.copy()
    bad[:, :10] = 21
    bad[:, 10:12] = -5
    kept = torch.from_numpy(bad[:, 12:])
    want = focal_by_cross_entropy(torch.from_numpy(logits[:, 12:]), kept, [0.25] + [0.75] * 20, 2.0).mean()
    got = run_graph(exported("focal_loss", exporter), logits=logits, labels=bad)
    assert float(got) == pytest.approx(want.item(), rel=1e-5)
    module = catalog.get("center_loss").build()
    features = rng.normal(0, 1, (64, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    labels[::4] = 10
    kept = labels != 10
    want = center_loss_by_bincount(torch.from_numpy(features[kept]), torch.from_numpy(labels[kept]), module.centers.detach(), 1.0)
    got = run_graph(exported("center_loss", exporter), features=features, labels=labels)
    assert float(got) == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_focal_variants_export_and_verify(tmp_path, exporter):
    """The alpha list and ignore_index are construction options: export such a variant and verify it."""
    entry = focal_entry("focal_loss_alpha_list", {"batch": 4, "anchors": 16, "classes": 5},
                        alpha=[0.1, 0.4, 0.2, 0.2, 0.1], gamma=1.5, reduction="sum", ignore_index=3)
    path = export_graph(entry, tmp_path, exporter=exporter).path
    rows = verify(path, entry=entry)
    assert all(row.passed for row in rows), [row.failures for row in rows]
    assert banned_ops(onnx.load(str(path))) == []


def test_center_update_graph_carries_state(exported):
    """Feeding the graph's new centers back in twice equals two eager steps."""
    path = exported("center_update", "dynamo")
    rng = np.random.default_rng(12)
    initial = centers = rng.normal(0, 1, (10, 32)).astype(np.float32)
    eager = torch.from_numpy(centers)
    for _ in range(2):
        features = rng.normal(0, 1, (64, 32)).astype(np.float32)
        labels = rng.integers(0, 6, 64)
        centers = run_graph(path, features=features, labels=labels, centers=centers)
        eager = center_update_by_loops(torch.from_numpy(features), torch.from_numpy(labels), eager, 0.5).float()
    np.testing.assert_allclose(centers, eager.numpy(), atol=1e-5)
    assert np.array_equal(centers[6:], initial[6:])  # classes never in a batch keep their centers


def test_center_update_on_an_empty_batch_keeps_every_center():
    """Issue 22, finding 10: center_update on 0 samples raised IndexError (amax over an empty dim)."""
    from exportloss import center_update

    centers = torch.randn(4, 3)
    got = center_update(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), centers)
    assert torch.equal(got, centers)
