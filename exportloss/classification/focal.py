"""Focal losses: the seed's softmax form over ``C`` classes, and torchvision's sigmoid form.

Softmax form (:class:`FocalLoss`, Lin et al. 2017 written for ``C`` exclusive classes, as in the seed):
for logits ``x`` over classes and an integer label ``y``, with ``log p_y = log_softmax(x)[y]``,

    ``loss = -alpha[y] * (1 - p_y) ** gamma * log p_y``

A scalar ``alpha`` means per-class weights ``[alpha, 1 - alpha, ..., 1 - alpha]``: **class 0 is the
background and gets alpha** (the seed's convention, also clcarwin's; kornia and MONAI give class 0
``1 - alpha`` instead). A list gives one weight per class. No eps enters anywhere: ``log p_y`` comes from
:func:`exportloss.ops.numerics.log_softmax_at` and ``1 - p_y`` from ``-expm1(log p_y)`` (:mod:`exportloss.ops.numerics`), each to a few
float32 ulps of itself for any finite logits, confident ones included (``log(1 + u)`` and ``1 - exp(v)`` as
plain ONNX operators would give 0 there, and a loss of 0).

Sigmoid form (:class:`SigmoidFocalLoss`, torchvision's ``sigmoid_focal_loss``): for each element,
``p = sigmoid(x)``, ``ce = BCEWithLogits(x, t)``, ``p_t = p t + (1 - p)(1 - t)``,

    ``loss = alpha_t * (1 - p_t) ** gamma * ce``,  ``alpha_t = alpha t + (1 - alpha)(1 - t)``

so **alpha weights the positives**; ``alpha < 0`` disables the weighting. ``ce`` is evaluated as
``t softplus(-x) + (1 - t) softplus(x)`` (:func:`exportloss.ops.numerics.binary_cross_entropy_with_logits`)
and ``1 - p_t`` as ``t σ(-x) + (1 - t) σ(x)``: neither cancels for confident logits, and both (softplus through
the accurate ``log1p``, ``σ`` through :func:`exportloss.ops.numerics.sigmoid`) stay within a few float32 ulps of
themselves for any finite ``x`` (no eps, no overflow), in eager mode and in the exported graph.

For ``0 < gamma < 1`` both forms take ``(1 - p)^gamma`` with :func:`exportloss.ops.numerics.focal_power`,
whose gradient is 0 rather than NaN where a prediction is exactly right.

Label handling shared by the classification losses (:func:`exportloss.ops.labels.valid_labels`): a label is valid when it
lies in ``[0, C)`` and differs from ``ignore_index``. Invalid labels are masked, never dropped: their
loss is 0 and they are left out of the ``"mean"`` denominator. The Python API raises on labels outside
``[0, C)`` (other than ``ignore_index``); an exported graph, which cannot raise, treats them as ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.checks import (
    check_float_tensor,
    check_interval,
    check_label_tensor,
    check_labels_in_range,
    check_number,
    check_same_shape,
)
from ..ops.labels import valid_labels
from ..ops.non_finite import non_finite_marker
from ..ops.numerics import binary_cross_entropy_with_logits, expm1, focal_power, log_softmax_at, sigmoid
from ..ops.reduction import check_reduction, reduce_loss, reduce_valid


def class_weights(alpha: float | Sequence[float], num_classes: int) -> torch.Tensor:
    """The seed's per-class ``alpha``: a scalar gives ``[alpha, 1 - alpha, ...]``, a list is used as given."""
    if isinstance(alpha, (int, float)):
        alpha = check_interval("alpha", alpha, 0.0, 1.0)
        weights = torch.full((num_classes,), 1.0 - alpha)
        weights[0] = float(alpha)
        return weights
    weights = torch.as_tensor([float(a) for a in alpha], dtype=torch.float32)
    if weights.shape != (num_classes,):
        raise ValueError(f"alpha as a list must have one weight per class (length num_classes={num_classes}); got length {len(weights)}")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"alpha weights must be finite and non-negative; got {weights.tolist()}")
    return weights


class FocalLoss(nn.Module):
    """The seed's softmax focal loss, ``-alpha[y] (1 - p_y)^gamma log p_y`` (see the module docstring).

    Args:
        num_classes: ``C``, fixed at construction (``C >= 1``).
        alpha: a number in ``[0, 1]`` (class 0 gets ``alpha``, every other class ``1 - alpha``) or a
            list of ``C`` non-negative per-class weights.
        gamma: focusing exponent ``>= 0``; 0 gives alpha-weighted cross-entropy.
        reduction: ``"mean"`` (over valid elements; alpha does not enter the denominator, as in the
            seed), ``"sum"`` or ``"none"``.
        ignore_index: a label value whose elements get loss 0 and leave the mean's denominator.

    Shapes:
        ``forward(logits [..., C], labels [...])``, e.g. ``[B, C]`` with ``[B]`` or ``[B, N, C]`` with
        ``[B, N]``; labels int64 or int32. Returns a scalar, or ``labels``' shape with ``"none"``.
    """

    def __init__(self, num_classes: int, alpha: float | Sequence[float] = 0.25, gamma: float = 2.0,
                 reduction: str = "mean", ignore_index: int | None = None) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1; got {num_classes}")
        self.num_classes = int(num_classes)
        self.register_buffer("alpha", class_weights(alpha, self.num_classes))
        self.gamma = check_number("gamma", gamma, minimum=0.0)
        self.reduction = check_reduction(reduction)
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_float_tensor("logits", logits)
        check_label_tensor("labels", labels)
        if logits.dim() < 2 or logits.shape[-1] != self.num_classes:
            raise ValueError(f"logits must have shape [B, ..., num_classes={self.num_classes}]; got {list(logits.shape)}")
        if labels.shape != logits.shape[:-1]:
            raise ValueError(f"labels must have the shape of logits without the class axis, {list(logits.shape[:-1])}; got {list(labels.shape)}")
        check_labels_in_range("labels", labels, self.num_classes, self.ignore_index)
        safe, valid = valid_labels(labels, self.num_classes, self.ignore_index)
        log_p = log_softmax_at(logits, safe)
        focal = focal_power(-expm1(log_p), self.gamma)
        loss = -F.embedding(safe, self.alpha.to(log_p.dtype).unsqueeze(1)).squeeze(-1) * focal * log_p
        loss = loss + non_finite_marker(logits, -1)  # the non-finite policy: a -inf logit would give a finite loss
        return reduce_valid(loss, valid, self.reduction)

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, alpha={[round(a, 6) for a in self.alpha.tolist()]}, gamma={self.gamma}, "
                f"reduction={self.reduction!r}, ignore_index={self.ignore_index}")


class SigmoidFocalLoss(nn.Module):
    """torchvision's ``sigmoid_focal_loss`` as a module (formula in the module docstring).

    Args:
        alpha: weight of the positives in ``[0, 1]`` (negatives get ``1 - alpha``); ``alpha < 0``
            disables the weighting.
        gamma: focusing exponent ``>= 0``.
        reduction: ``"none"`` (default, as torchvision), ``"mean"`` over all elements, or ``"sum"``.

    Shapes:
        ``forward(logits [...], targets [...])``: floating targets of the same shape, usually 0/1;
        soft targets in ``[0, 1]`` follow the same formula. Returns ``logits``' shape or a scalar.
    """

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none") -> None:
        super().__init__()
        # Negative disables the weighting (torchvision's convention), so only the upper end is bounded.
        self.alpha = check_interval("alpha", alpha, high=1.0)
        self.gamma = check_number("gamma", gamma, minimum=0.0)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_float_tensor("logits", logits)
        check_float_tensor("targets", targets)
        check_same_shape("logits", logits, "targets", targets)
        ce = binary_cross_entropy_with_logits(logits, targets)
        # 1 - p_t = p (1 - t) + (1 - p) t with 1 - p = σ(-x): exact for confident positives, where 1 - σ(x) rounds to 0.
        miss = sigmoid(logits) * (1.0 - targets) + sigmoid(-logits) * targets
        loss = focal_power(miss, self.gamma) * ce
        if self.alpha >= 0:
            loss = loss * ((1.0 - self.alpha) + (2.0 * self.alpha - 1.0) * targets)
        loss = loss + non_finite_marker(logits)  # the non-finite policy: ±inf logits give NaN, never 0 or inf
        return reduce_loss(loss, self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"
