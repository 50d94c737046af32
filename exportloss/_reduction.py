"""Loss reductions, written once for every loss module."""

from __future__ import annotations

import torch

from ._checks import REDUCTIONS, check_choice


def check_reduction(reduction: str) -> str:
    return check_choice("reduction", reduction, REDUCTIONS)


def reduce_loss(loss: torch.Tensor, reduction: str, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Apply an optional elementwise ``weight``, then ``reduction``.

    ``"mean"`` divides the weighted sum by the number of elements (not by the weight sum), as
    torchvision and kornia do; ``"sum"`` sums; ``"none"`` returns the weighted per-element loss.
    ``"mean"`` of an empty tensor is 0 rather than NaN.
    """
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / max(loss.numel(), 1)


def reduce_valid(loss: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    """Zero the loss where ``valid`` is false, then ``"none"``, ``"sum"`` or ``"mean"`` over the valid elements.

    ``"mean"`` divides by the number of valid elements and is 0 when there are none.
    """
    loss = torch.where(valid, loss, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum().clamp_min(1)
