"""Box formats and the per-box terms every overlap metric needs.

Formats (all along the last dimension, size 4):

* ``"xyxy"``: ``(x1, y1, x2, y2)``, top-left and bottom-right corners.
* ``"xywh"``: ``(x1, y1, w, h)``, top-left corner plus width and height.
* ``"cxcywh"``: ``(cx, cy, w, h)``, centre plus width and height.

The per-box terms are computed once per box, on tensors of shape ``[..., N]``, so that pairwise
metrics only broadcast ``[..., N, 1]`` against ``[..., 1, M]`` and never build ``[..., N, M, 2]``
intermediates.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..ops.checks import check_choice

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


BOX_LAYOUTS = ("flat", "column", "row")


def box_corners(
    boxes: torch.Tensor, fmt: str, layout: str = "flat"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``boxes [..., N, 4]`` in ``fmt`` into corner coordinates ``x1, y1, x2, y2``.

    ``layout`` shapes each coordinate for what it will meet: ``"flat"`` gives ``[..., N]``,
    ``"column"`` gives ``[..., N, 1]`` and ``"row"`` gives ``[..., 1, N]``, so that a column broadcast
    against a row is pairwise. Column and row come straight from one Split (after one Transpose for
    rows) instead of Squeeze and Unsqueeze nodes per coordinate. ``fmt`` must be one of :data:`BOX_FORMATS`;
    the public entry points check it once per call, so this inner helper does not check it again.
    """
    if layout == "column":
        a, b, c, d = boxes.split(1, dim=-1)
    elif layout == "row":
        a, b, c, d = boxes.transpose(-1, -2).split(1, dim=-2)
    else:
        a, b, c, d = boxes.unbind(-1)
    if fmt == "xyxy":
        return a, b, c, d
    if fmt == "xywh":
        return a, b, a + c, b + d
    half_w, half_h = c * 0.5, d * 0.5
    return a - half_w, b - half_h, a + half_w, b + half_h


def convert_boxes(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``boxes [..., 4]`` from ``in_fmt`` to ``out_fmt``."""
    check_choice("in_fmt", in_fmt, BOX_FORMATS)
    check_choice("out_fmt", out_fmt, BOX_FORMATS)
    x1, y1, x2, y2 = box_corners(boxes, in_fmt)
    if out_fmt == "xyxy":
        return torch.stack((x1, y1, x2, y2), dim=-1)
    w, h = x2 - x1, y2 - y1
    if out_fmt == "xywh":
        return torch.stack((x1, y1, w, h), dim=-1)
    return torch.stack((x1 + 0.5 * w, y1 + 0.5 * h, w, h), dim=-1)


class BoxTerms(NamedTuple):
    """Per-box quantities, one value per box, all shaped alike (see :func:`box_corners`'s ``layout``)."""

    x1: torch.Tensor
    y1: torch.Tensor
    x2: torch.Tensor
    y2: torch.Tensor
    w: torch.Tensor
    h: torch.Tensor
    area: torch.Tensor
    half_x1: torch.Tensor
    half_x2: torch.Tensor
    half_y1: torch.Tensor
    half_y2: torch.Tensor
    """Halved corners (exact: a scaling by 0.5), for centre offsets without the rounding of a centre, see
    :func:`centre_offsets`."""
    aspect_angle: torch.Tensor
    """``2/π · atan(w / (h + eps))``, so that CIoU's ``v`` is the squared difference of two of them."""


ATAN_COEFFICIENTS = (
    0.9999999976324975, -0.3333328365299865, 0.1999826624153302, -0.1426193471224663, 0.10942037646838737,
    -0.08377333251429128, 0.05755237622748346, -0.03080484805388806, 0.010727069615973047, -0.0017539566025948413,
)
"""``atan(t) ≈ t · Σ c_k t^(2k)`` on ``[0, 1]``: a weighted least-squares (Lawson) fit of the relative error on
4000 Chebyshev nodes, max relative error 2.4e-9 in float64, below float32's half ulp (6e-8)."""


def atan_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``atan(num / den)`` for ``num >= 0`` and ``den > 0``, from operators every backend runs.

    onnxruntime's CUDA provider has no ``Atan`` kernel (the node would run on the CPU behind Memcpy nodes),
    so the angle is ``P(t)`` with ``t = min(num, den) / max(num, den)`` in ``[0, 1]`` and the polynomial
    :data:`ATAN_COEFFICIENTS`, reflected by ``atan(r) = π/2 − atan(1/r)`` where ``num > den``. The ratio
    ``t`` never overflows or divides by zero (``max >= den > 0``), so value and gradient are finite for
    every ratio from 0 to inf, and the result is accurate to float32 rounding.
    """
    low = torch.minimum(num, den)
    high = torch.maximum(num, den)
    t = low / high
    t2 = t * t
    poly = t2 * ATAN_COEFFICIENTS[-1] + ATAN_COEFFICIENTS[-2]
    for coefficient in ATAN_COEFFICIENTS[-3::-1]:
        poly = poly * t2 + coefficient
    angle = poly * t
    # where(num > den, π/2 - angle, angle) without Where, which onnxruntime's CPU provider runs about 8x
    # slower than a Mul: reflected = 1 there, 0 elsewhere; each branch's value is formed exactly as written.
    reflected = (num > den).to(t.dtype)
    return reflected * (math.pi / 2) + (1.0 - 2.0 * reflected) * angle


def box_terms(boxes: torch.Tensor, fmt: str, eps: float, with_aspect: bool, layout: str = "flat",
              with_centre: bool = True) -> BoxTerms:
    """Per-box terms of ``boxes [..., N, 4]``, each shaped by ``layout`` as in :func:`box_corners`.

    fp16 and bf16 boxes give float32 terms (box arithmetic stays in float32). An inverted box (``x2 < x1`` or ``y2 < y1``) is treated as having zero width or height at
    ``x1`` / ``y1``, so every metric stays finite on it. ``eps`` enters only the aspect angle,
    ``atan(w / (h + eps))`` (computed by :func:`atan_ratio`), which keeps CIoU finite (value and
    gradient) for zero-height boxes. Without ``with_aspect`` the ``aspect_angle`` field holds ``w`` and without
    ``with_centre`` the halved corners hold the corners themselves: placeholders that cost nothing, for the
    metrics that never read them.
    """
    if boxes.dtype in (torch.float16, torch.bfloat16):  # areas of 256-px boxes already overflow fp16
        boxes = boxes.float()
    x1, y1, x2, y2 = box_corners(boxes, fmt, layout)
    x2 = torch.maximum(x2, x1)
    y2 = torch.maximum(y2, y1)
    w, h = x2 - x1, y2 - y1
    aspect = atan_ratio(w, h + eps) * (2.0 / math.pi) if with_aspect else w
    halves = (x1 * 0.5, x2 * 0.5, y1 * 0.5, y2 * 0.5) if with_centre else (x1, x2, y1, y2)
    return BoxTerms(x1, y1, x2, y2, w, h, w * h, *halves, aspect)


def centre_offsets(a: BoxTerms, b: BoxTerms) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx, dy)``, the centre of ``b`` minus the centre of ``a``, accurate to a few ulps of the offset itself.

    Written ``(x1_b/2 − x1_a/2) + (x2_b/2 − x2_a/2)``: each difference of two nearby coordinates is exact (or
    rounded relative to itself). The textbook ``cx_b − cx_a`` first rounds each centre to an ulp of the
    coordinate, which on normalised coordinates (centres near 0.5, offsets near 1e-4) costs 3 of float32's
    7 digits of the offset, and 7e-5 of DIoU and SIoU.
    """
    return (b.half_x1 - a.half_x1) + (b.half_x2 - a.half_x2), (b.half_y1 - a.half_y1) + (b.half_y2 - a.half_y2)
