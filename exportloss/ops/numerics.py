"""Numerically stable building blocks that export to plain ONNX operators."""

from __future__ import annotations

import torch


def stable_softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x))`` as ``max(x, 0) + log(1 + exp(-|x|))``: no overflow for any finite ``x``.

    Written out rather than ``F.softplus`` because ONNX ``Softplus`` has no threshold and overflows in
    backends that evaluate it literally.
    """
    return x.clamp_min(0) + torch.log1p(torch.exp(-x.abs()))


def binary_cross_entropy_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-t log σ(x) - (1 - t) log(1 - σ(x))`` as ``t·softplus(-x) + (1 - t)·softplus(x)``, elementwise.

    Neither term cancels: ``softplus(-x) = max(-x, 0) + log1p(e^{-|x|})`` is formed directly, never as
    ``softplus(x) - x`` (which at ``x = 10`` keeps 2 of float32's 7 digits and gives 0 from ``x ≈ 17``).
    The two softplus share ``log1p(e^{-|x|})``. Exact to float32 rounding for any finite logit, no eps.
    """
    shared = torch.log1p(torch.exp(-logits.abs()))
    softplus_pos = logits.clamp_min(0) + shared
    softplus_neg = (-logits).clamp_min(0) + shared
    return targets * softplus_neg + (1.0 - targets) * softplus_pos


def focal_power(base: torch.Tensor, gamma: float) -> torch.Tensor:
    """``base ** gamma`` for ``base`` in ``[0, 1]`` (a focal modulating factor), gradient-safe at ``base = 0``.

    For ``0 < gamma < 1`` the derivative ``gamma·base^(gamma - 1)`` is infinite at 0, and the chain rule
    turns it into NaN (``inf · 0``) where a prediction is exactly right. There the factor is written
    ``where(base <= 0, 0, max(base, tiny) ** gamma)``: the same values (``tiny``, the dtype's smallest
    normal number, only moves the unused branch off 0), and a zero gradient at 0, the limit of the
    loss's gradient. A NaN ``base`` stays NaN. ``gamma = 0`` gives 1 everywhere and ``gamma >= 1`` the plain power, whose
    derivative is finite at 0. ``base`` must not be negative (clamp rounding residues first).
    """
    if gamma == 0:
        return torch.ones_like(base)
    if gamma >= 1:
        return base.pow(gamma)
    tiny = torch.finfo(base.dtype).tiny
    return torch.where(base <= 0, torch.zeros_like(base), base.clamp_min(tiny).pow(gamma))


def is_finite(x: torch.Tensor) -> torch.Tensor:
    """``torch.isfinite`` as ``|x| <= largest finite value``: false for NaN and ±inf.

    Exports as Abs and LessOrEqual, which every backend runs in every float type; ONNX ``IsInf``
    takes no float16 before opset 20. A graph converted to float16 afterwards turns the float32
    bound into inf, and then lets ±inf pass (NaN still fails).
    """
    return x.abs() <= torch.finfo(x.dtype).max
