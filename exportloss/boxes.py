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


def box_corners(boxes: torch.Tensor, fmt: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``boxes [..., 4]`` in ``fmt`` into corner coordinates ``x1, y1, x2, y2``, each ``[...]``."""
    check_choice("fmt", fmt, BOX_FORMATS)
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
    """Per-box quantities, each of shape ``[...]`` (one value per box)."""

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

    def unsqueeze(self, dim: int) -> "BoxTerms":
        return BoxTerms(*(t.unsqueeze(dim) for t in self))


def box_terms(boxes: torch.Tensor, fmt: str, eps: float, with_aspect: bool) -> BoxTerms:
    """Per-box terms of ``boxes [..., 4]``.

    An inverted box (``x2 < x1`` or ``y2 < y1``) is treated as having zero width or height at
    ``x1`` / ``y1``, so every metric stays finite on it. ``eps`` enters only the aspect angle,
    ``atan(w / (h + eps))``, which keeps CIoU finite (value and gradient) for zero-height boxes.
    """
    x1, y1, x2, y2 = box_corners(boxes, fmt)
    x2 = torch.maximum(x2, x1)
    y2 = torch.maximum(y2, y1)
    w, h = x2 - x1, y2 - y1
    aspect = torch.atan(w / (h + eps)) * (2.0 / math.pi) if with_aspect else w
    return BoxTerms(x1, y1, x2, y2, w, h, w * h, (x1 + x2) * 0.5, (y1 + y2) * 0.5, aspect)
