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

from ._checks import check_choice

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


BOX_LAYOUTS = ("flat", "column", "row")


def box_corners(
    boxes: torch.Tensor, fmt: str, layout: str = "flat"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``boxes [..., N, 4]`` in ``fmt`` into corner coordinates ``x1, y1, x2, y2``.

    ``layout`` shapes each coordinate for what it will meet: ``"flat"`` gives ``[..., N]``,
    ``"column"`` gives ``[..., N, 1]`` and ``"row"`` gives ``[..., 1, N]``, so that a column broadcast
    against a row is pairwise. Column and row come straight from one Split (after one Transpose for
    rows) instead of Squeeze and Unsqueeze nodes per coordinate.
    """
    check_choice("fmt", fmt, BOX_FORMATS)
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
    x1, y1, x2, y2 = box_corners(boxes, in_fmt)
    check_choice("out_fmt", out_fmt, BOX_FORMATS)
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
    cx: torch.Tensor
    cy: torch.Tensor
    aspect_angle: torch.Tensor
    """``2/π · atan(w / (h + eps))``, so that CIoU's ``v`` is the squared difference of two of them."""


def box_terms(boxes: torch.Tensor, fmt: str, eps: float, with_aspect: bool, layout: str = "flat") -> BoxTerms:
    """Per-box terms of ``boxes [..., N, 4]``, each shaped by ``layout`` as in :func:`box_corners`.

    An inverted box (``x2 < x1`` or ``y2 < y1``) is treated as having zero width or height at
    ``x1`` / ``y1``, so every metric stays finite on it. ``eps`` enters only the aspect angle,
    ``atan(w / (h + eps))``, which keeps CIoU finite (value and gradient) for zero-height boxes.
    """
    x1, y1, x2, y2 = box_corners(boxes, fmt, layout)
    x2 = torch.maximum(x2, x1)
    y2 = torch.maximum(y2, y1)
    w, h = x2 - x1, y2 - y1
    aspect = torch.atan(w / (h + eps)) * (2.0 / math.pi) if with_aspect else w
    return BoxTerms(x1, y1, x2, y2, w, h, w * h, (x1 + x2) * 0.5, (y1 + y2) * 0.5, aspect)
