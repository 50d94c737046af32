"""The losses' non-finite input policy, in one place: a NaN or infinite input makes the loss it enters NaN.

A loss must not hide bad input (README, "Non-finite input policy"). Many formulas would: a sigmoid maps
+inf to an honest 1, an IoU divides a finite intersection by an infinite union and gives 0, a softmax
gives an infinite logit's neighbours probability 0. So every loss adds :func:`non_finite_marker` of its
inputs to its per-element (per-box, per-sample) values before the reduction: ``0`` where the slice it
summarises is finite, NaN where it holds a NaN or ±inf, so the affected elements and every mean or sum
over them become NaN and nothing else changes (``x + 0 == x`` exactly).

``x * 0`` is 0 for every finite ``x`` (no overflow, unlike ``x.sum() * 0``) and NaN for ±inf and NaN, and a
sum propagates NaN in every backend. ``x * 0 -> 0`` is not an IEEE identity, and neither the onnxscript
optimizer nor onnxruntime at ORT_ENABLE_ALL rewrites it: ``tests/classification/test_loss_numerics.py``
runs every loss graph with NaN, +inf and -inf in onnxruntime. TensorRT engines are not checked here (no GPU).
"""

from __future__ import annotations

import torch


def non_finite_marker(x: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """``(x * 0).sum(dim)``: 0 where the summed slice of ``x`` is finite, NaN where it holds NaN or ±inf.

    ``dim=None`` keeps ``x``'s shape (an elementwise marker), otherwise the summed axes are removed.
    """
    zero = x * 0.0
    return zero if dim is None else zero.sum(dim)
