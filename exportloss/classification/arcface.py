"""Additive angular (ArcFace) and additive cosine (CosFace) margin heads and losses.

For a feature ``x`` and class weights ``W [D, C]``, ``cos θ_j = x̂ · ŵ_j`` with ``x̂ = x / max(||x||, eps)``
and ``ŵ_j = w_j / max(||w_j||, eps)``, ``eps = NORM_EPS = 1e-6`` (``F.normalize``'s form; this is the only
place that eps enters the cosine). A zero feature (or a zero weight column) therefore has ``cos θ = 0``,
i.e. ``θ = π/2``, and every output stays finite. The floor also bounds the gradient: near a zero feature
``x̂ = x / eps``, so ``||∂ℓ/∂x|| = ||∂ℓ/∂x̂|| / max(||x||, eps) <= 2s / eps`` per sample (``∂ℓ/∂x̂ = s Σ_j
(P_j - y_j) ŵ_j`` has norm at most ``2s``): 1.3e8 at ``s = 64``. ``F.normalize``'s default ``1e-12`` would
allow 1.3e14, which one zero feature vector (a dead ReLU layer) turns into a ruined optimizer step. The
values equal ``F.normalize``'s for every ``||x|| >= 1e-6``, far below any usable embedding's norm.

Features of any floating dtype are accepted: fp16 and bf16 features are computed in float32 (the
weight's dtype; float64 when the features or the weight are float64), and the outputs come in that dtype,
as autocast computes softmax and losses in float32. The margined target cosine ``φ`` is

* ``margin="arcface"``: ``φ = cos(θ + m)``, expanded as ``cos θ cos m - sin θ sin m`` (no acos) with
  ``sin θ = sqrt(max(1 - cos²θ, tiny))``, ``tiny`` the dtype's smallest normal number (1.2e-38 in
  float32). Computed ``1 - cos²θ`` is either 0 or far above ``tiny``, so the floor changes no value; it
  only keeps ``sqrt`` away from 0, whose infinite derivative would make the gradient NaN at ``cos θ = ±1``.
  Where ``θ + m > π`` (``cos θ <= cos(π - m)``) ``cos(θ + m)`` would increase with θ again, so ``φ`` falls
  back to ``cos θ - m sin m``, as insightface (before Dec 2022) and arcface-pytorch do with their
  ``th``/``mm`` constants. The fallback is monotonic but not continuous at ``θ = π - m``.
* ``margin="cosface"``: ``φ = cos θ - m``.

The seed's ArcNet head (:class:`ArcSoftmax`) returns, for every class ``j``,

    ``P_ij = exp(s φ_ij) / (sum_k exp(s cos θ_ik) - exp(s cos θ_ij) + exp(s φ_ij))``,

i.e. the softmax class ``j`` would get if ``j`` were the label. It is computed in log space, with the
sum over ``k != j`` formed without the cancelling subtraction (see :func:`log_sum_exp_of_others`), so
``s = 64`` neither overflows nor loses the small classes. :class:`ArcFaceLoss` is
``mean_i(-log P_{i, y_i})``, computed as cross-entropy of the logits ``s cos θ`` with the label's entry
replaced by ``s φ``, through :func:`exportloss.ops.numerics.log_softmax_at`: a confident sample's small loss
keeps its digits (onnxruntime's ``LogSoftmax`` returns 0 once the other classes' share is below 2^-24).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ops.checks import check_choice, check_count, check_float_tensor, check_interval, check_label_tensor, check_labels_in_range, check_number
from ..ops.reduction import check_reduction
from ..ops.labels import valid_labels
from ..ops.numerics import log1p, log_softmax_at, stable_softplus
from ..ops.reduction import reduce_valid
from ..ops.ties import first_argmax

ANGULAR_MARGINS = ("arcface", "cosface")
NORM_EPS = 1e-6
"""Floor of ``||x||`` and ``||w_j||`` when normalising; bounds the gradient at a zero feature (module docstring)."""


def margined_cosine(cos: torch.Tensor, m: float, margin: str = "arcface") -> torch.Tensor:
    """``φ`` of the module docstring, elementwise: ``cos(θ + m)`` with the ``θ + m > π`` fallback, or ``cos θ - m``."""
    if margin == "cosface":
        return cos - m
    sin = (1.0 - cos * cos).clamp_min(torch.finfo(cos.dtype).tiny).sqrt()
    shifted = cos * math.cos(m) - sin * math.sin(m)
    return torch.where(cos > math.cos(math.pi - m), shifted, cos - m * math.sin(m))


def log_sum_exp_of_others(z: torch.Tensor) -> torch.Tensor:
    """``out[..., j] = log sum_{k != j} exp(z[..., k])`` over the last axis (which needs >= 2 entries).

    ``log(sum_k e^{z_k} - e^{z_j})`` cancels catastrophically when ``z_j`` dominates its row, which
    for ArcSoftmax is the common case. Instead, with ``t`` the row's first argmax: for ``j = t`` the
    sum over the others is formed directly in the frame of the second largest value; for ``j != t``
    it still contains ``e^{z_t}``, so in the frame of ``z_t`` it is ``1 + R - e^{z_j - z_t}`` with
    ``R`` the others' share, a number ``>= 1`` that the subtraction cannot cancel.
    """
    z_top, top = first_argmax(z, -1)  # ties to the lower index on every backend (exportloss.ops.ties)
    is_top = top == torch.arange(z.shape[-1], device=z.device)
    without_top = z.masked_fill(is_top, torch.finfo(z.dtype).min)
    second = without_top.amax(-1, keepdim=True)
    log_others_of_top = second + (without_top - second).exp().sum(-1, keepdim=True).log()
    # Zeroing the top's own share keeps the unused top entry finite, so no NaN gradient leaks through where.
    own_share = (z - z_top).exp().masked_fill(is_top, 0.0)
    log_others = z_top + log1p((log_others_of_top - z_top).exp() - own_share)
    return torch.where(is_top, log_others_of_top, log_others)


def _normalized(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x / max(||x||, NORM_EPS)`` along ``dim``: ``F.normalize`` without the Expand it exports."""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(NORM_EPS)


class _AngularMarginHead(nn.Module):
    """Class weights ``[feat_dim, num_classes]`` (as the seed's ArcNet), scale ``s`` and margin ``m``."""

    def __init__(self, feat_dim: int, num_classes: int, s: float, m: float, margin: str) -> None:
        super().__init__()
        check_count("feat_dim", feat_dim, 1)
        check_count("num_classes", num_classes, 2)
        self.margin = check_choice("margin", margin, ANGULAR_MARGINS)
        s = check_number("s", s, minimum=0.0, strict=True)
        # Past π an angular margin wraps around; an additive cosine margin has no upper end.
        m = check_interval("m", m, 0.0, math.pi if margin == "arcface" else math.inf, high_open=True)
        self.feat_dim = int(feat_dim)
        self.num_classes = int(num_classes)
        self.s = float(s)
        self.m = float(m)
        self.weight = nn.Parameter(torch.randn(self.feat_dim, self.num_classes))

    def cosine(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, D] -> [B, C]`` cosines between normalised features and normalised class weights.

        Computed in float32 at least (float64 when features or weight are float64), whatever the features' dtype.
        """
        check_float_tensor("features", features)
        if features.dim() != 2 or features.shape[1] != self.feat_dim:
            raise ValueError(f"features must have shape [B, feat_dim={self.feat_dim}]; got {list(features.shape)}")
        dtype = torch.promote_types(torch.promote_types(features.dtype, self.weight.dtype), torch.float32)
        return _normalized(features.to(dtype), dim=1) @ _normalized(self.weight.to(dtype), dim=0)

    def extra_repr(self) -> str:
        return f"feat_dim={self.feat_dim}, num_classes={self.num_classes}, s={self.s}, m={self.m}, margin={self.margin!r}"


class ArcSoftmax(_AngularMarginHead):
    """The seed's ArcNet head, corrected: ``forward(features [B, D]) -> P [B, C]`` (formula in the module docstring).

    Rows of ``P`` do not sum to 1: each entry is the probability its class would get as the label.
    Entries below the dtype's smallest number (about ``e^-103`` in float32, e.g. a feature opposite its
    class at ``s = 64``) underflow to 0; :class:`ArcFaceLoss` stays in log space and has no such limit.

    Args:
        feat_dim, num_classes: ``D`` and ``C >= 2``; the weight ``[D, C]`` is drawn from a standard normal.
        s: scale (64 as insightface; the seed overwrote it with a product of norms).
        m: margin in radians, ``0 <= m < π`` for ArcFace.
        margin: ``"arcface"`` (``cos(θ + m)``) or ``"cosface"`` (``cos θ - m``).
    """

    def __init__(self, feat_dim: int, num_classes: int, s: float = 64.0, m: float = 0.5, margin: str = "arcface") -> None:
        super().__init__(feat_dim, num_classes, s, m, margin)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(features)
        margined = self.s * margined_cosine(cos, self.m, self.margin)
        # log P = s φ - log(others + e^{s φ}) = -softplus(log(others) - s φ)
        return torch.exp(-stable_softplus(log_sum_exp_of_others(self.s * cos) - margined))


class ArcFaceLoss(_AngularMarginHead):
    """``-log P_{i, y_i}`` of :class:`ArcSoftmax`, reduced; the margin applies to the label's class only.

    Args:
        feat_dim, num_classes, s, m, margin: as for :class:`ArcSoftmax`.
        reduction: ``"mean"`` (over valid samples), ``"sum"`` or ``"none"``.

    Shapes:
        ``forward(features [B, D], labels [B]) -> []`` (or ``[B]`` with ``"none"``); labels int64 or
        int32 in ``[0, C)``. In an exported graph an out-of-range label makes its sample count as absent.
    """

    def __init__(self, feat_dim: int, num_classes: int, s: float = 64.0, m: float = 0.5, margin: str = "arcface",
                 reduction: str = "mean") -> None:
        super().__init__(feat_dim, num_classes, s, m, margin)
        self.reduction = check_reduction(reduction)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(features)
        check_label_tensor("labels", labels)
        if labels.shape != features.shape[:1]:
            raise ValueError(f"labels must have shape [B] with B={features.shape[0]} as in features; got {list(labels.shape)}")
        check_labels_in_range("labels", labels, self.num_classes)
        safe, valid = valid_labels(labels, self.num_classes)
        target = safe.unsqueeze(1)
        target_logit = self.s * margined_cosine(cos.gather(1, target), self.m, self.margin)
        is_target = target == torch.arange(self.num_classes, device=target.device)
        logits = torch.where(is_target, target_logit, self.s * cos)
        nll = -log_softmax_at(logits, safe)
        return reduce_valid(nll, valid, self.reduction)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reduction={self.reduction!r}"


class CosFaceLoss(ArcFaceLoss):
    """:class:`ArcFaceLoss` with ``margin="cosface"``: logits ``s cos θ``, the label's ``s (cos θ - m)``.

    ``m = 0.35`` as in the CosFace paper and pytorch-metric-learning (insightface uses 0.4).
    """

    def __init__(self, feat_dim: int, num_classes: int, s: float = 64.0, m: float = 0.35, reduction: str = "mean") -> None:
        super().__init__(feat_dim, num_classes, s, m, "cosface", reduction)
