"""Rotated boxes: exact polygon IoU, ProbIoU and their losses, as static trace-friendly graphs.

**Convention.** A rotated box is ``[..., 5] = (cx, cy, w, h, θ)``: centre, side lengths and the angle
θ in radians. Its corners are ``(cx, cy) ± (w/2)·u ± (h/2)·v`` with ``u = (cos θ, sin θ)`` (the
direction of the side of length ``w``) and ``v = (−sin θ, cos θ)``. In a frame whose x axis points
right and whose y axis points **up**, a positive θ turns the box counter-clockwise. In image
coordinates (x right, y **down**) the same numbers turn it **clockwise on the screen**: the formula
is unchanged, only the picture is mirrored. This is the formula of mmrotate (every angle version:
``oc``, ``le90``, ``le135``), of OpenCV's ``RotatedRect`` in radians and of ultralytics' ``xywhr``, so
boxes from those libraries need no conversion; :func:`to_mmrotate` maps boxes into mmrotate's
canonical ranges when a consumer needs them. θ and θ + π describe the same box, and so do
``(w, h, θ)`` and ``(h, w, θ + π/2)``; every function here gives equal results for them.

**Exact IoU.** :func:`rotated_pairwise_iou` / :func:`rotated_aligned_iou` compute the area of the
intersection polygon of two rectangles, without approximation, in a static graph:

1. Work in box B's frame (origin at B's centre, axes along B's sides): A's corners there come from
   the centre difference ``c_A − c_B`` and the relative angle, so coordinates of 1e4 lose no
   precision to the centres' magnitude, and B's corners are ``(±w_B/2, ±h_B/2)``.
2. Candidates, 24 per pair, as values plus a validity mask (no branches): A's 4 corners inside B,
   B's 4 corners inside A, and the 16 crossings of A's 4 edges with the 4 lines that carry B's
   sides (a crossing counts when the edge changes side of the line and the crossing lies on B's
   side). Inclusion tests allow a tolerance of ``1e-6·(w_A + h_A + w_B + h_B)``, a few float32
   rounding errors of the corner coordinates: a boundary point that rounding puts just outside
   still counts, so identical boxes, shared edges and θ vs θ + π give the full area.
3. The valid points are ordered by a pseudo-angle (monotone in the true angle, no atan2) around
   their centroid (TopK, equal keys lowest index first); invalid points sort last and are replaced
   by the first point. The shoelace sum around the centroid is the area.

*The backend's tie order cannot change the result, bit for bit.* Equal keys are common: a corner
of A that is also a crossing, the corners of identical boxes or of θ vs θ + π (equal up to rounding:
distinct float32 points on one ray), the corners of a tiny relative angle, zero-area polygons.
Swapping such a pair moves the float32 sum by a rounding error (up to ~4e-7 of the IoU measured on
the catalog's cases), enough for two backends to disagree. So the order is made unique: equal keys
go lowest candidate index first, by a second TopK over a tie-free key (:func:`_ascending_order`),
which is the order ONNX specifies for TopK and onnxruntime's CPU provider follows. Why any order
of equal keys gives a correct area: the intersection is convex and the centroid interior unless
the area is zero, so distinct boundary points with equal keys lie within rounding of one ray and
of each other (swapping them changes the area by a rounding error) or in a zero-area polygon;
exact duplicates add ``cross(p, p) = 0``, and the padding points all equal the first point.
``tests/toolchain/test_ties.py`` runs the exported graphs with every TopK breaking ties the other way, and
``tests/boxes/test_rotated.py`` reverses and shuffles the candidates.

Values: IoU = ``I / (area_A + area_B − I + eps)`` with ``I`` capped at ``min(area_A, area_B)`` (so
IoU <= 1 whatever the rounding); 0 for boxes of zero area. Gradients are finite
everywhere: divisions are guarded before they happen (the crossing parameter's denominator is
replaced where it is smaller than the tolerance), and the ordering carries no gradient. Error
against an exact float64 polygon clipper: below 1e-6 on ordinary boxes, and bounded by the
tolerance band (``~1e-6 · perimeter / area``) in the worst case.

**ProbIoU** (Llerena et al. 2021, as ultralytics' OBB models use it): each box is a Gaussian with
mean ``(cx, cy)`` and covariance ``R(θ)·diag(w², h²)/12·R(θ)ᵀ``. With ``Σ = (Σ_A + Σ_B)/2``, the
Bhattacharyya distance is ``B = ⅛·Δμᵀ Σ⁻¹ Δμ + ½·ln(det Σ / √(det Σ_A · det Σ_B))``; ProbIoU is
``1 − √(1 − exp(−B) + eps)`` with ``B`` clamped to ``[eps, 100]``. eps enters ``det(Σ_A + Σ_B) + eps``
(the quadratic term's denominator), the logarithm's argument ``det(Σ_A+Σ_B) / (4·√(det Σ_A det Σ_B)
+ eps) + eps``, the clamp and the square root, as in ultralytics. ``√(det Σ_A)`` is written as
``w_A·h_A/12`` (the determinant does not depend on θ), which keeps the gradient finite at zero
area, where ultralytics' ``sqrt`` of the product has an infinite one.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..ops.checks import broadcast_batch, check_boxes, check_choice, check_eps, check_float_tensor
from ..ops.non_finite import non_finite_marker
from ..ops.numerics import expm1, log1p
from ..ops.reduction import check_reduction, reduce_box_loss
from .iou import BOX_EPS

ROTATED_KINDS = ("iou", "probiou")
MMROTATE_VERSIONS = ("oc", "le90", "le135")
INCLUSION_TOLERANCE = 1e-6
"""Relative tolerance of the inclusion tests, times ``w_A + h_A + w_B + h_B`` (see the module docstring)."""
ROW_BLOCK = 256
"""Rows of ``boxes1`` per block in :func:`rotated_pairwise_iou`'s exact IoU."""
_INVALID_KEY = 8.0
"""Sort key of invalid candidates: pseudo-angles lie in [0, 4]."""
_CORNER_SIGNS = ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))
"""Corner order, counter-clockwise in the box's own frame: (−w/2, −h/2), (w/2, −h/2), (w/2, h/2), (−w/2, h/2)."""


def check_rotated(name: str, boxes: object, min_dim: int = 1) -> torch.Tensor:
    return check_boxes(name, boxes, min_dim, width=5, layout=" (cx, cy, w, h, theta)")


# ---------------------------------------------------------------------------------------------- conversions


def rotated_to_polygon(boxes: torch.Tensor) -> torch.Tensor:
    """Corners of ``boxes [..., 5]`` as ``[..., 8] = (x1, y1, ..., x4, y4)``, in the order of :data:`_CORNER_SIGNS`
    (counter-clockwise in a y-up frame, clockwise on screen in image coordinates)."""
    check_rotated("boxes", boxes)
    cx, cy, w, h, theta = boxes.unbind(-1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    corners = []
    for su, sv in _CORNER_SIGNS:
        du, dv = su * 0.5 * w, sv * 0.5 * h
        corners += [cx + du * cos - dv * sin, cy + du * sin + dv * cos]
    return torch.stack(corners, dim=-1)


def polygon_to_rotated(polygons: torch.Tensor) -> torch.Tensor:
    """Rotated boxes ``[..., 5]`` from 4-corner polygons ``[..., 8] = (x1, y1, ..., x4, y4)`` (DOTA's format).

    The corners go around the box in either direction. The centre is the mean of the corners,
    ``w`` the mean length of the sides p1p2 and p4p3, ``h`` that of p2p3 and p1p4, and θ the
    direction of ``(p2 − p1) + (p3 − p4)``; for a rectangle this is exact (and inverts
    :func:`rotated_to_polygon`), for another quadrilateral it is a fit of its mean sides, not the
    minimum-area rectangle of ``cv2.minAreaRect``. Corners in clockwise order (y up) give the same
    box with ``h`` measured the other way, which is the same rectangle. Eager use only: it calls atan2.
    """
    polygons = check_float_tensor("polygons", polygons)
    if polygons.shape[-1] != 8:
        raise ValueError(f"polygons must have shape [..., 8] (x1, y1, ..., x4, y4); got {list(polygons.shape)}")
    p = polygons.unflatten(-1, (4, 2))
    p1, p2, p3, p4 = p.unbind(-2)
    centre = p.mean(dim=-2)
    w = ((p2 - p1).norm(dim=-1) + (p3 - p4).norm(dim=-1)) * 0.5
    h = ((p3 - p2).norm(dim=-1) + (p4 - p1).norm(dim=-1)) * 0.5
    direction = (p2 - p1) + (p3 - p4)
    theta = torch.atan2(direction[..., 1], direction[..., 0])
    return torch.cat([centre, w.unsqueeze(-1), h.unsqueeze(-1), theta.unsqueeze(-1)], dim=-1)


def to_mmrotate(boxes: torch.Tensor, version: str = "le90") -> torch.Tensor:
    """The same rotated boxes ``[..., 5]`` with (w, h, θ) in mmrotate's canonical range for ``version``.

    * ``"le90"``: ``w >= h`` and θ in ``[−π/2, π/2)``.
    * ``"le135"``: ``w >= h`` and θ in ``[−π/4, 3π/4)``.
    * ``"oc"`` (OpenCV >= 4.5.1): θ in ``(0, π/2]``, ``w`` along θ (either side may be longer).

    Going the other way needs nothing: mmrotate's boxes of every version use this module's corner
    formula, so they are valid input as they are.
    """
    check_rotated("boxes", boxes)
    check_choice("version", version, MMROTATE_VERSIONS)
    cx, cy, w, h, theta = boxes.unbind(-1)
    if version == "oc":
        # Rotating by −π/2 swaps the sides: (w, h, θ) is the box (h, w, θ − π/2).
        quarter = torch.remainder(theta, math.pi / 2)
        quarter = torch.where(quarter == 0, torch.full_like(quarter, math.pi / 2), quarter)
        turns = torch.round((theta - quarter) / (math.pi / 2))
        odd = torch.remainder(turns, 2) == 1
        return torch.stack([cx, cy, torch.where(odd, h, w), torch.where(odd, w, h), quarter], dim=-1)
    swap = w < h
    long_side, short_side = torch.where(swap, h, w), torch.where(swap, w, h)
    theta = torch.where(swap, theta + math.pi / 2, theta)
    start = -math.pi / 2 if version == "le90" else -math.pi / 4
    theta = torch.remainder(theta - start, math.pi) + start
    return torch.stack([cx, cy, long_side, short_side, theta], dim=-1)


# --------------------------------------------------------------------------------------------- exact IoU


class _RotatedTerms(NamedTuple):
    cx: torch.Tensor
    cy: torch.Tensor
    w: torch.Tensor
    h: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor


def _terms(boxes: torch.Tensor, layout: str) -> _RotatedTerms:
    """Per-box terms shaped ``[..., N]`` (flat), ``[..., N, 1]`` (column) or ``[..., 1, N]`` (row).

    Negative sides count as zero: such a box has zero area, as an inverted axis-aligned box does.
    """
    if layout == "column":
        parts = boxes.split(1, dim=-1)
    elif layout == "row":
        parts = boxes.transpose(-1, -2).split(1, dim=-2)
    else:
        parts = boxes.unbind(-1)
    cx, cy, w, h, theta = parts
    return _RotatedTerms(cx, cy, torch.relu(w), torch.relu(h), torch.cos(theta), torch.sin(theta))


def _stack_last(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(torch.broadcast_tensors(*values), dim=-1)


def _intersection_area(a: _RotatedTerms, b: _RotatedTerms) -> torch.Tensor:
    """Area of the intersection of boxes ``a`` and ``b`` (broadcast shapes), by the steps of the module docstring."""
    # A in B's frame: centre offset d and the relative rotation φ = θ_A − θ_B.
    dx, dy = a.cx - b.cx, a.cy - b.cy
    ox = dx * b.cos + dy * b.sin
    oy = dy * b.cos - dx * b.sin
    cos_phi = a.cos * b.cos + a.sin * b.sin
    sin_phi = a.sin * b.cos - a.cos * b.sin
    half_wa, half_ha = a.w * 0.5, a.h * 0.5
    half_wb, half_hb = b.w * 0.5, b.h * 0.5
    tol = (a.w + a.h + b.w + b.h) * INCLUSION_TOLERANCE

    # A's corners in B's frame, [..., 4] in counter-clockwise order.
    ux, uy = half_wa * cos_phi, half_wa * sin_phi
    vx, vy = -half_ha * sin_phi, half_ha * cos_phi
    ax = _stack_last([ox + su * ux + sv * vx for su, sv in _CORNER_SIGNS])
    ay = _stack_last([oy + su * uy + sv * vy for su, sv in _CORNER_SIGNS])
    half_wb_, half_hb_, tol_ = half_wb.unsqueeze(-1), half_hb.unsqueeze(-1), tol.unsqueeze(-1)
    a_in_b = (ax.abs() <= half_wb_ + tol_) & (ay.abs() <= half_hb_ + tol_)

    # B's corners in B's frame, and the same corners in A's frame for the inclusion test.
    bx = _stack_last([su * half_wb for su, _ in _CORNER_SIGNS])
    by = _stack_last([sv * half_hb for _, sv in _CORNER_SIGNS])
    rx, ry = bx - ox.unsqueeze(-1), by - oy.unsqueeze(-1)
    cos_, sin_ = cos_phi.unsqueeze(-1), sin_phi.unsqueeze(-1)
    b_in_a = ((rx * cos_ + ry * sin_).abs() <= half_wa.unsqueeze(-1) + tol_) & (
        (ry * cos_ - rx * sin_).abs() <= half_ha.unsqueeze(-1) + tol_)

    # Crossings of A's edges (corner k to k+1) with the lines x = ±w_B/2 and y = ±h_B/2: [..., 4, 2] each.
    ax_next = torch.cat([ax[..., 1:], ax[..., :1]], dim=-1)
    ay_next = torch.cat([ay[..., 1:], ay[..., :1]], dim=-1)
    sides = torch.tensor([1.0, -1.0], dtype=ax.dtype, device=ax.device)
    cross_x, cross_y, cross_ok = [], [], []
    for vertical_lines in (True, False):
        # "along" is the coordinate the lines fix (x for x = ±w_B/2), "other" the one along the lines.
        along, along_next, half_along = (ax, ax_next, half_wb_) if vertical_lines else (ay, ay_next, half_hb_)
        other, other_next, half_other = (ay, ay_next, half_hb_) if vertical_lines else (ax, ax_next, half_wb_)
        line = (half_along * sides).unsqueeze(-2)  # [..., 1, 2]
        start = along.unsqueeze(-1) - line  # signed offsets of the edge's ends from each line, [..., 4, 2]
        end = along_next.unsqueeze(-1) - line
        step = start - end
        # An edge within the tolerance of parallel to a line has no well-defined crossing; its corners
        # (inclusion-tested with the same tolerance) already carry the polygon there.
        steep = step.abs() > tol_.unsqueeze(-1)
        t = (start / torch.where(steep, step, torch.ones_like(step))).clamp(0.0, 1.0)
        at = other.unsqueeze(-1) + t * (other_next - other).unsqueeze(-1)
        ok = steep & ((start <= 0) != (end <= 0)) & (at.abs() <= (half_other + tol_).unsqueeze(-1))
        on_line = line.expand_as(at)
        cross_x.append((on_line if vertical_lines else at).flatten(-2))
        cross_y.append((at if vertical_lines else on_line).flatten(-2))
        cross_ok.append(ok.flatten(-2))

    px = torch.cat([ax, bx.expand_as(ax), *cross_x], dim=-1)  # [..., 24]
    py = torch.cat([ay, by.expand_as(ay), *cross_y], dim=-1)
    valid = torch.cat([a_in_b, b_in_a, *cross_ok], dim=-1)
    return _polygon_area(px, py, valid)


def _polygon_area(px: torch.Tensor, py: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Area of the convex hull of the valid points of ``[..., P]`` coordinates, as the module docstring orders them."""
    weight = valid.to(px.dtype)
    count = weight.sum(dim=-1, keepdim=True).clamp(min=1.0)
    rx = px - (px * weight).sum(dim=-1, keepdim=True) / count
    ry = py - (py * weight).sum(dim=-1, keepdim=True) / count
    # Pseudo-angle in [0, 4], increasing counter-clockwise from the +x axis: 1 − x/(|x|+|y|) above the
    # x axis, 3 + x/(|x|+|y|) below. The keys carry no gradient: only the order comes from them.
    with torch.no_grad():
        norm = rx.abs() + ry.abs()
        ratio = rx / torch.where(norm > 0, norm, torch.ones_like(norm))
        key = torch.where(ry >= 0, 1.0 - ratio, 3.0 + ratio)
        key = torch.where(valid, key, torch.full_like(key, _INVALID_KEY))
        order = _ascending_order(key)
    qx, qy = rx.gather(-1, order), ry.gather(-1, order)
    in_order = valid.gather(-1, order)
    qx = torch.where(in_order, qx, qx[..., :1])
    qy = torch.where(in_order, qy, qy[..., :1])
    next_x = torch.cat([qx[..., 1:], qx[..., :1]], dim=-1)
    next_y = torch.cat([qy[..., 1:], qy[..., :1]], dim=-1)
    return torch.relu((qx * next_y - qy * next_x).sum(dim=-1) * 0.5)


def _ascending_order(key: torch.Tensor) -> torch.Tensor:
    """Indices that sort ``key [..., P]`` ascending, equal keys lowest index first, on every backend.

    A TopK of ``key`` leaves the order of equal keys to the backend, but not its sorted values, so
    each sorted position's run number (how many distinct keys lie below its key: a CumSum of "differs
    from the previous value") depends on the key alone. ``run · P + index`` is then a unique integer
    per candidate, exact in float32 (<= P² + P), and a second TopK over it has no ties to break.
    """
    extent = key.shape[-1]
    sorted_key, order = key.topk(extent, dim=-1, largest=False)
    starts_run = (sorted_key[..., 1:] != sorted_key[..., :-1]).to(torch.float32)
    run = torch.cat([torch.zeros_like(starts_run[..., :1]), starts_run], dim=-1).cumsum(dim=-1)
    unique_key = run * extent + order.to(torch.float32)
    return order.gather(-1, unique_key.topk(extent, dim=-1, largest=False).indices)


def _iou(a: _RotatedTerms, b: _RotatedTerms, eps: float) -> torch.Tensor:
    area_a, area_b = a.w * a.h, b.w * b.h
    # Points admitted by the tolerance may add a rounding error's worth of area: cap I at the smaller
    # area, so that IoU never exceeds 1.
    inter = torch.minimum(_intersection_area(a, b), torch.minimum(area_a, area_b))
    return inter / ((area_a + eps) + area_b - inter)


# --------------------------------------------------------------------------------------------- ProbIoU


def _probiou(a: _RotatedTerms, b: _RotatedTerms, eps: float) -> torch.Tensor:
    # Every quantity is a sum of non-negative terms taken in the boxes' own frames, so thin boxes lose
    # nothing to cancellation (σ_xx·σ_yy − σ_xy² does, by ~1e-4 for a 60x1 box in float32). With
    # p = w²/12 and q = h²/12 per box, φ = θ_A − θ_B and S = Σ_A + Σ_B:
    #   det S = p_A q_A + p_B q_B + (p_A p_B + q_A q_B)·sin²φ + (p_A q_B + q_A p_B)·cos²φ,
    #   Δμᵀ adj(S) Δμ = Σ over both boxes of q·(Δμ·u)² + p·(Δμ·v)², u, v the box's axes.
    pa, qa = a.w * a.w / 12.0, a.h * a.h / 12.0
    pb, qb = b.w * b.w / 12.0, b.h * b.h / 12.0
    cos_phi = a.cos * b.cos + a.sin * b.sin
    sin_phi = a.sin * b.cos - a.cos * b.sin
    cos2, sin2 = cos_phi * cos_phi, sin_phi * sin_phi
    det = pa * qa + pb * qb + (pa * pb + qa * qb) * sin2 + (pa * qb + qa * pb) * cos2
    dx, dy = a.cx - b.cx, a.cy - b.cy
    along_a, across_a = dx * a.cos + dy * a.sin, dy * a.cos - dx * a.sin
    along_b, across_b = dx * b.cos + dy * b.sin, dy * b.cos - dx * b.sin
    form = qa * along_a * along_a + pa * across_a * across_a + qb * along_b * along_b + pb * across_b * across_b
    quadratic = 0.25 * form / (det + eps)  # ⅛·Δμᵀ Σ⁻¹ Δμ, Σ⁻¹ = 2·adj(S)/det S
    # ½·ln(det Σ / √(det Σ_A det Σ_B)), det Σ = det S / 4, √det Σ_A = w_A·h_A/12, taken as
    # ½·log1p((det S − 4R − eps) / (4R + eps) + eps) with R = √(det Σ_A det Σ_B): the logarithm's argument is
    # 1 + (something small) for near-identical boxes, whose digits ln(det S / 4R) would lose twice (det S − 4R
    # cancels, then 1 + it rounds). det S − 4R >= 0 is written as a sum of non-negative terms instead.
    root_dets = (a.w * a.h) * (b.w * b.h) / 144.0
    excess = _det_excess(a, b, cos2, sin2)
    log_term = 0.5 * log1p((excess - eps) / (4.0 * root_dets + eps) + eps)
    distance = (quadratic + log_term).clamp(eps, 100.0)
    return 1.0 - torch.sqrt(eps - expm1(-distance))  # 1 − exp(−B) would keep none of a small B's digits


def _det_excess(a: _RotatedTerms, b: _RotatedTerms, cos2: torch.Tensor, sin2: torch.Tensor) -> torch.Tensor:
    """ProbIoU's ``det S − 4R`` (``S = Σ_A + Σ_B``, ``R = w_A h_A w_B h_B / 144``) without cancellation.

    With ``k = (p_A − q_A)(p_B − q_B)``: ``det S = (p_A + p_B)(q_A + q_B) + k·sin²φ = (p_A + q_B)(q_A + p_B) − k·cos²φ``,
    and by ``p_A + p_B = 2√(p_A p_B) + (√p_A − √p_B)²`` each product minus 4R is a sum of non-negative terms in the
    side differences (``w_A − w_B`` for the first form, ``w_A − h_B`` for the second). The form whose ``k`` term
    is non-negative (the first where ``k >= 0``, else the second) adds no cancellation at all."""
    def excess(side_a1, side_b1, side_a2, side_b2):  # (s_a1² + s_b1²)(s_a2² + s_b2²)/144 − 4 s_a1 s_b1 s_a2 s_b2 / 144
        mean1, gap1 = side_a1 * side_b1 / 12.0, (side_a1 - side_b1) * (side_a1 - side_b1) / 12.0
        mean2, gap2 = side_a2 * side_b2 / 12.0, (side_a2 - side_b2) * (side_a2 - side_b2) / 12.0
        return 2.0 * (mean1 * gap2 + mean2 * gap1) + gap1 * gap2

    k = ((a.w - a.h) * (a.w + a.h)) * ((b.w - b.h) * (b.w + b.h)) / 144.0
    return torch.where(k >= 0, excess(a.w, b.w, a.h, b.h) + k * sin2, excess(a.w, b.h, a.h, b.w) - k * cos2)


# --------------------------------------------------------------------------------------------- public API

_METRICS = {"iou": _iou, "probiou": _probiou}


def _check_pair(boxes1: object, boxes2: object, kind: str, eps: object, min_dim: int) -> None:
    """The checks the modules make, made by every function too (eps = -1 once gave an IoU of 1.14)."""
    check_choice("kind", kind, ROTATED_KINDS)
    check_eps(eps)
    check_rotated("boxes1", boxes1, min_dim)
    check_rotated("boxes2", boxes2, min_dim)


def rotated_pairwise_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", eps: float = BOX_EPS) -> torch.Tensor:
    """Overlap of every rotated box in ``boxes1`` with every one in ``boxes2``.

    Args:
        boxes1: ``[..., N, 5]`` (cx, cy, w, h, θ) boxes, θ in radians (module docstring).
        boxes2: ``[..., M, 5]``; leading dimensions broadcast with ``boxes1``'s.
        kind: ``"iou"`` (exact polygon IoU) or ``"probiou"``.
        eps: stabiliser, placed as in the module docstring.

    Returns:
        ``[..., N, M]``. The exact IoU works on blocks of :data:`ROW_BLOCK` rows of ``boxes1`` at a
        time, so its ``[..., rows, M, 24]`` intermediates stay bounded (peak memory measured at
        N = M = 1000: onnxruntime 1.4 GiB in one block, 0.53 GiB in blocks of 256 rows; eager
        PyTorch 2.2 and 0.7 GiB); exported graphs hold one copy of the block computation per block.
    """
    _check_pair(boxes1, boxes2, kind, eps, min_dim=2)
    broadcast_batch("boxes1", boxes1.shape[:-2], "boxes2", boxes2.shape[:-2])
    b = _terms(boxes2, "row")
    if kind == "probiou":
        return _probiou(_terms(boxes1, "column"), b, eps)
    # Blocks of rows bound the [..., rows, M, 24] intermediates; a static loop, unrolled in exported graphs.
    blocks = [_iou(_terms(rows, "column"), b, eps) for rows in boxes1.split(ROW_BLOCK, dim=-2)]
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-2)


def rotated_aligned_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", eps: float = BOX_EPS) -> torch.Tensor:
    """Overlap of ``boxes1[..., n, :]`` with ``boxes2[..., n, :]``: ``[..., N, 5]`` twice -> ``[..., N]``."""
    _check_pair(boxes1, boxes2, kind, eps, min_dim=1)
    broadcast_batch("boxes1", boxes1.shape[:-1], "boxes2", boxes2.shape[:-1])
    return _METRICS[kind](_terms(boxes1, "flat"), _terms(boxes2, "flat"), eps)


def probiou(boxes1: torch.Tensor, boxes2: torch.Tensor, aligned: bool = False, eps: float = BOX_EPS) -> torch.Tensor:
    """ProbIoU, pairwise (``[..., N, 5] x [..., M, 5] -> [..., N, M]``) or with ``aligned=True`` row by row."""
    if not isinstance(aligned, bool):
        raise TypeError(f"aligned must be True or False; got {aligned!r}")
    fn = rotated_aligned_iou if aligned else rotated_pairwise_iou
    return fn(boxes1, boxes2, "probiou", eps)


class RotatedPairwiseIoU(nn.Module):
    """Module form of :func:`rotated_pairwise_iou`: ``forward(boxes1 [..., N, 5], boxes2 [..., M, 5]) -> [..., N, M]``."""

    def __init__(self, kind: str = "iou", eps: float = BOX_EPS) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, ROTATED_KINDS)
        self.eps = check_eps(eps)

    def forward(self, boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        return rotated_pairwise_iou(boxes1, boxes2, self.kind, self.eps)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, eps={self.eps}"


class RotatedAlignedIoU(RotatedPairwiseIoU):
    """Module form of :func:`rotated_aligned_iou`: ``forward(boxes1 [..., N, 5], boxes2 [..., N, 5]) -> [..., N]``."""

    def forward(self, boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        return rotated_aligned_iou(boxes1, boxes2, self.kind, self.eps)


class RotatedIoULoss(nn.Module):
    """``loss = 1 − rotated_aligned_iou(pred, target, kind, eps)``, then an optional weight and the reduction.

    ``kind="iou"`` is the exact polygon IoU, ``kind="probiou"`` the Gaussian one (ultralytics'
    ``RotatedBboxLoss`` uses ``1 − ProbIoU``). Values lie in ``[0, 1]``; gradients are finite on
    every degenerate input (zero sides, identical, nested, touching or far-apart boxes).

    Shapes:
        ``forward(pred [..., N, 5], target [..., N, 5], weight [..., N] | None)``: a scalar, or
        ``[..., N]`` with ``reduction="none"``.
    """

    def __init__(self, kind: str = "iou", reduction: str = "mean", eps: float = BOX_EPS) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, ROTATED_KINDS)
        self.reduction = check_reduction(reduction)
        self.eps = check_eps(eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return reduce_box_loss(lambda: self._per_box(pred, target), self.reduction, weight)

    def _per_box(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = 1.0 - rotated_aligned_iou(pred, target, self.kind, self.eps)
        # The non-finite policy (exportloss.ops.non_finite): a zero side at -inf would otherwise give IoU 0, a finite loss.
        return loss + (non_finite_marker(pred, -1) + non_finite_marker(target, -1)).to(loss.dtype)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, reduction={self.reduction!r}, eps={self.eps}"
