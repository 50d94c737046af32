"""Numerically stable building blocks that export to plain ONNX operators.

ONNX has no ``Log1p`` or ``Expm1``: the exporter writes ``torch.log1p(u)`` as ``Log(1 + u)``, which
loses the digits of ``u`` that ``1 + u`` rounds away (all of them for ``u < 2^-24``), and onnxruntime's
``Sigmoid`` is accurate in absolute terms only. :func:`log1p`, :func:`expm1` and :func:`sigmoid` are torch's
own accurate kernels in eager mode (values and gradients as torch computes them) and, while a graph is being
exported (``torch.onnx.is_in_onnx_export()``, both exporters), accurate forms built from standard operators:
:func:`onnx_log1p`, :func:`onnx_expm1`, :func:`onnx_sigmoid`. Every ``log(1 + u)``, ``exp(v) − 1`` and
``σ(x)`` whose relative precision matters in the graph modules goes through them.
"""

from __future__ import annotations

import torch


def log1p(u: torch.Tensor) -> torch.Tensor:
    """``log(1 + u)``: ``torch.log1p`` eagerly, :func:`onnx_log1p` in an exported graph."""
    return onnx_log1p(u) if torch.onnx.is_in_onnx_export() else torch.log1p(u)


def expm1(v: torch.Tensor) -> torch.Tensor:
    """``exp(v) − 1``: ``torch.expm1`` eagerly, :func:`onnx_expm1` in an exported graph."""
    return onnx_expm1(v) if torch.onnx.is_in_onnx_export() else torch.expm1(v)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + e^{−x})``: ``torch.sigmoid`` eagerly, :func:`onnx_sigmoid` in an exported graph."""
    return onnx_sigmoid(x) if torch.onnx.is_in_onnx_export() else torch.sigmoid(x)


def onnx_log1p(u: torch.Tensor) -> torch.Tensor:
    """``log(1 + u)`` to a few ulps for every ``u >= -1``, from ``Add``, ``Sub``, ``Log``, ``Div``, ``Mul``, ``Equal``, ``Cast``.

    With ``w = fl(1 + u)`` and ``d = w - 1`` (exact), ``w = 1 + d`` exactly, so ``log(w)`` is the exact
    ``log1p(d)``; ``log1p(u) = log1p(d) · u / d`` to first order in ``u - d`` because ``log1p(v)/v`` varies
    slowly (Goldberg's ``log1p``, relative error ``<= 5ε`` with a correctly rounded ``log``). Where
    ``w == 1`` (``|u| < 2^-24``), ``log1p(u) = u`` to within ``u/2 <= 2^-25`` relative. The exporter and
    onnxscript's optimizer keep ``(1 + u) - 1``: they fold constants, not algebra (the precision tests
    check the exported graphs). NaN gives NaN, ``u = -1`` gives ``-inf``; ``u = +inf`` gives NaN (``inf / inf``),
    which no caller passes: they take ``u`` in ``[0, C]``.

    The two cases are joined without ``Where`` (slow in onnxruntime, :mod:`exportloss.ops.select`): with ``s = 1``
    where ``w == 1`` and 0 elsewhere, ``(log(w) + s) · (u / (d + s))``: where ``s = 1``, ``log(w)`` is exactly 0
    and ``d`` is 0, leaving ``1 · u``; elsewhere both sums add an exact 0.
    """
    w = 1.0 + u
    d = w - 1.0
    rounded_away = (d == 0).to(u.dtype)
    return (torch.log(w) + rounded_away) * (u / (d + rounded_away))


def onnx_expm1(v: torch.Tensor) -> torch.Tensor:
    """``exp(v) − 1`` to a few ulps for every ``v <= 88``, from ``Exp``, ``Sub``, ``Log``, ``Div``, ``Mul``, ``Where``.

    Kahan's form: with ``w = fl(e^v)``, ``expm1(v) = (w − 1) · v / log(w)``; the rounding error of ``w`` cancels
    between ``w − 1`` and ``log(w)``. Where ``w == 1`` (``|v| < 2^-24``) it is ``v``; where ``w − 1`` rounds to −1
    (``v < −17.3``) it is −1, the correctly rounded value (there ``w`` may be subnormal, or 0, and ``log(w)`` off).
    ``1 − exp(v)`` instead keeps none of the digits of a ``v`` near 0. NaN gives NaN; ``v > 88`` (``w = inf``)
    gives NaN, which no caller passes (they take ``v <= 0``).
    """
    w = torch.exp(v)
    d = w - 1.0
    rounded_away = d == 0
    ratio = v / torch.where(rounded_away, torch.ones_like(w), torch.log(w))
    return torch.where(rounded_away, v, torch.where(d == -1, d, d * ratio))


def onnx_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + e^{−x})`` written out, to a few ulps of itself for every ``x``: the condition of ``1 / (1 + u)``
    in ``u`` is ``u / (1 + u) <= 1``, so ``e^{−x}``'s own ulps carry over and nothing cancels; below ``x ≈ −88.7``
    ``e^{−x}`` overflows and ``σ`` is 0, under float32's smallest normal number.

    onnxruntime's ``Sigmoid`` is accurate in absolute terms only (2e-4 relative at ``x = −10``, 0 below
    ``x ≈ −17``), and a focal factor ``σ(x)^γ`` multiplies that error.
    """
    return 1.0 / (1.0 + torch.exp(-x))


def stable_softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x))`` as ``max(x, 0) + log1p(exp(-|x|))``: no overflow for any finite ``x``, and a few ulps
    of relative error everywhere (the ``log1p`` term is the whole result for ``x < 0``, where ``Log(1 + u)`` would
    give 0 from ``x < -17``).

    Written out rather than ``F.softplus`` because ONNX ``Softplus`` has no threshold and overflows in
    backends that evaluate it literally.
    """
    return x.clamp_min(0) + log1p(torch.exp(-x.abs()))


def log_softmax_at(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits, -1)`` at ``labels`` (``logits [..., C]``, labels in ``[0, C)``), to a few ulps of itself.

    With ``z = x − max x``, ``Σ_k e^{z_k} = c + R``, ``c`` the number of maxima and ``R`` the sum over the
    others, so ``log p_y = z_y − log1p((c − 1) + R)``. Both terms are ``<= 0``: nothing cancels. onnxruntime's
    ``LogSoftmax`` forms ``log(1 + R)`` and returns 0 for a confident label (``R < 2^-24``), whose loss is then 0.
    """
    shifted = logits - logits.amax(-1, keepdim=True)
    at_max = shifted == 0
    rest = torch.where(at_max, torch.zeros_like(shifted), shifted.exp()).sum(-1) + (at_max.sum(-1) - 1).to(shifted.dtype)
    return shifted.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - log1p(rest)


def binary_cross_entropy_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-t log σ(x) - (1 - t) log(1 - σ(x))`` as ``t·softplus(-x) + (1 - t)·softplus(x)``, elementwise.

    Neither term cancels: ``softplus(-x) = max(-x, 0) + log1p(e^{-|x|})`` is formed directly, never as
    ``softplus(x) - x`` (which at ``x = 10`` keeps 2 of float32's 7 digits and gives 0 from ``x ≈ 17``).
    The two softplus share ``log1p(e^{-|x|})``. Exact to float32 rounding for any finite logit, no eps.
    """
    shared = log1p(torch.exp(-logits.abs()))
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
