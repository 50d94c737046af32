"""Loss reductions, written once for every loss module."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .checks import REDUCTIONS, broadcast_batch, check_choice, check_float_tensor


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


def reduce_box_loss(per_box: Callable[[], torch.Tensor], reduction: str, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``reduce_loss`` of ``per_box()``, the per-box loss of a ``(pred, target)`` pair computed by an aligned metric.

    The metric names its arguments ``boxes1`` and ``boxes2``; its errors are re-raised naming ``pred`` and
    ``target``. ``weight`` must broadcast to the per-box loss's shape.
    """
    try:
        loss = per_box()
    except (ValueError, TypeError) as err:
        raise type(err)(str(err).replace("boxes1", "pred").replace("boxes2", "target")) from None
    if weight is not None:
        check_float_tensor("weight", weight)
        if broadcast_batch("weight", weight.shape, "the per-box loss", loss.shape) != loss.shape:
            raise ValueError(f"weight must broadcast to the per-box loss shape {list(loss.shape)}; got {list(weight.shape)}")
    return reduce_loss(loss, reduction, weight)
