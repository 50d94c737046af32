"""Numerically stable building blocks that export to plain ONNX operators."""

from __future__ import annotations

import torch


def stable_softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x))`` as ``max(x, 0) + log(1 + exp(-|x|))``: no overflow for any finite ``x``.

    Written out rather than ``F.softplus`` because ONNX ``Softplus`` has no threshold and overflows in
    backends that evaluate it literally.
    """
    return x.clamp_min(0) + torch.log1p(torch.exp(-x.abs()))


def is_finite(x: torch.Tensor) -> torch.Tensor:
    """``torch.isfinite`` as ``|x| <= largest finite value``: false for NaN and ±inf.

    Exports as Abs and LessOrEqual, which every backend runs in every float type; ONNX ``IsInf``
    takes no float16 before opset 20. A graph converted to float16 afterwards turns the float32
    bound into inf, and then lets ±inf pass (NaN still fails).
    """
    return x.abs() <= torch.finfo(x.dtype).max
