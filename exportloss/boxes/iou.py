"""The IoU family (IoU, GIoU, DIoU, CIoU), pairwise and aligned, as trace-friendly functions.

Formulas, for boxes ``a`` and ``b`` with intersection ``I``, union ``U = area_a + area_b - I``,
smallest enclosing box of width ``cw`` and height ``ch`` and area ``C = cw · ch``, squared centre
distance ``ρ²`` and eps (default :data:`BOX_EPS` ``= 1e-7``):

* IoU  = ``I / (U + eps)``
* GIoU = ``IoU - (C - U) / (C + eps)``
* DIoU = ``IoU - ρ² / (cw² + ch² + eps)``
* CIoU = ``DIoU - α · v`` with ``v = 4/π² · (atan(w_a / (h_a + eps)) - atan(w_b / (h_b + eps)))²``
  and ``α = v / ((v + (1 - IoU)) + eps)``; α carries no gradient (it is detached), as in torchvision,
  mmdet and ultralytics. The denominator adds eps last, to a sum of two non-negative terms: written
  ``(1 + eps) - IoU + v``, eps is lost to rounding in fp16 (``1 + 1e-7 == 1``) and identical boxes give
  ``0 / 0``; this order gives ``0 / eps = 0`` for them in every dtype. The angles come from
  :func:`exportloss.boxes.formats.atan_ratio` (no ``Atan`` node, which onnxruntime's CUDA provider lacks).

Gradients on degenerate boxes are finite but can be large: for identical zero-height boxes the GIoU
penalty ``(C - U) / (C + eps)`` rises from 0 to about 1 when one box moves by ``eps / side``, so its slope
there is up to ``side / eps``. That is the slope of the eps-regularised metric (the exact one is 0/0).

Precision: fp16 and bf16 boxes are computed in float32 and the result is returned in the input dtype
(as torchvision's ``_upcast``): box areas of 256-px boxes already exceed fp16's 65504.

Three more kinds, each as its source defines it (``dx, dy`` = centre of ``b`` minus centre of ``a``):

* EIoU, mmdet's ``eiou_loss`` (Extended-IoU of Peng & Yu, *not* the Focal-EIoU of Zhang et al.):
  ``I_s / (area_a + area_b − I_s + eps)`` with the *signed* intersection ``I_s``, which equals ``I``
  for overlapping boxes and turns negative for disjoint ones (so EIoU < 0 there). With the enclosing box's top-left ``(ex, ey)`` and the
  intersection's corner coordinates ``lo_x = max(x1)``, ``hi_x = min(x2)`` (likewise y), measured
  from ``(ex, ey)``: ``I_s = hi_x·hi_y + min(lo_x, hi_x)·min(lo_y, hi_y) − lo_x·max(lo_y, hi_y) −
  max(lo_x, hi_x)·lo_y``. :class:`~exportloss.IoULoss` applies mmdet's smooth knee to it.
* SIoU (Gevorgyan 2022; mmdet's ``siou_loss`` with ``neg_gamma=True``, the paper's sign):
  ``IoU − (Δ + Ω)/2``; angle cost ``Λ = sin 2α = 2·|dx·dy| / (dx² + dy² + eps)`` (mmdet writes it
  ``cos(2·asin(sin α) − π/2)``, the same number), ``γ = Λ − 2``, distance cost
  ``Δ = 2 − exp(γ·dx²/(cw² + eps)) − exp(γ·dy²/(ch² + eps))``, shape cost
  ``Ω = Σ_{w,h} (1 − exp(−|w_a − w_b| / (max(w_a, w_b) + eps)))⁴``. mmdet's default
  ``neg_gamma=False`` flips γ's sign, which makes Δ negative and unbounded; this kind follows the paper.
  mmdet clamps its loss to ``1 − clamp(SIoU, −1, 1)``; here SIoU is not clamped (it stays above −1.1).
* α-IoU (He et al. 2021): ``max(IoU, eps)^α``, ``alpha`` (default 3, the paper's and YOLO recipes'
  choice) being the power; only plain IoU is raised to it. The floor at eps keeps the gradient
  finite for ``α < 1``.

eps enters exactly where written above and nowhere else, in this module and in its float64 reference
(:mod:`exportloss.reference.boxes`) alike; on normalised coordinates (boxes 1e-4 wide) it visibly moves
IoU, DIoU and SIoU, and graph and reference move together. On ordinary boxes the values equal
torchvision.ops (``box_iou``, ``generalized_box_iou``, ``distance_box_iou``, ``complete_box_iou``)
within 1e-5; unlike torchvision they stay finite, with finite gradients, on zero-area boxes: two
empty boxes have IoU 0 and GIoU 0, and a zero-height box has a finite aspect angle. Inverted boxes
(``x2 < x1``) are treated as zero-width.

Nothing here branches on tensor values, calls ``.item()`` or indexes with masks: the Python
branches depend only on ``kind``, ``fmt`` and the static shapes, fixed when a graph is exported.

Row tiles. A pairwise metric computes several ``N × M`` planes one after another; once a plane no
longer fits in a core's cache, every pass goes to memory (2.7 ns/pair at N = M = 1000, 4.9 at 4000 on
the project's machine). So when the plane exceeds :data:`CACHE_BYTES_PER_CORE`, the ``boxes1`` rows are
cut into tiles of :func:`tile_rows_for` rows (one Split per per-box term), the whole chain runs on each
tile while its planes are cache-resident, and one Concat joins the tiles. Every pair's value comes from
the same elementwise operations either way, so tiled and untiled results are bit-identical. Eagerly the
tiles are torch ops; :mod:`exportloss.export` traces the chain once and tiles the ONNX graph
(:mod:`exportloss.row_tiles`), which keeps export time and the optimizer's work at the untiled graph's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..ops.checks import broadcast_batch, check_boxes, check_choice, check_eps, check_number
from .formats import BOX_FORMATS, BoxTerms, box_terms, centre_offsets
from ..ops.tile_plans import record_tile_plan

IOU_KINDS = ("iou", "giou", "diou", "ciou", "eiou", "siou", "alpha_iou")

CENTRE_KINDS = ("diou", "ciou", "siou")
"""The kinds that read the centre offsets (:func:`~exportloss.boxes.formats.centre_offsets`)."""

BOX_EPS = 1e-7
"""The default stabiliser of every box metric (ultralytics' and torchvision's 1e-7). Where it enters is the
convention this module's docstring states formula by formula; the float64 references in
:mod:`exportloss.reference.boxes` take this default and add eps at exactly those places, so graph and
reference agree on normalised coordinates too, where squared extents (1e-8 for boxes 1e-4 wide) are below eps."""

CACHE_BYTES_PER_CORE = 2 << 20
"""The per-core cache a pairwise tile is sized for: 2 MiB, the L2 of one core of current Xeon server parts
(this project's bench machine). Override per call with ``tile_rows`` or ``exportloss export --tile-rows``."""

PLANES_IN_FLIGHT = 2
"""``[rows, M]`` planes a tile keeps hot at once: an elementwise step's operand and its result."""

MAX_TILES = 64
"""Tiles per graph at most: the node count grows with the tiles (12 nodes per tile for IoU, 36 for CIoU), and
64 keeps a 10000 x 10000 graph under 800 nodes for IoU and 2500 for CIoU; larger shapes get taller tiles instead."""


def tile_rows_for(n: int, m: int, cache_bytes: int = CACHE_BYTES_PER_CORE, itemsize: int = 4) -> int:
    """Rows of ``boxes1`` per tile for an ``n × m`` pairwise plane.

    ``n`` (untiled) when one ``n × m`` plane fits in ``cache_bytes``; else the largest multiple of 8 rows
    whose :data:`PLANES_IN_FLIGHT` planes fit (at least 8), raised where needed to keep at most
    :data:`MAX_TILES` tiles. For float32 and 2 MiB: N = M = 724 and smaller stay untiled; 256 rows at
    M = 1000, 80 at 3000, 64 at 4000, 157 at 10000 (64 tiles).
    """
    if n * m * itemsize <= cache_bytes:
        return n
    rows = max(8, cache_bytes // (PLANES_IN_FLIGHT * itemsize * m) // 8 * 8)
    return max(rows, -(-n // MAX_TILES))


def pairwise_iou(
    boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", fmt: str = "xyxy", eps: float = BOX_EPS,
    alpha: float = 3.0,
    tile_rows: int | None = None,
) -> torch.Tensor:
    """Overlap of every box in ``boxes1`` with every box in ``boxes2``.

    Args:
        boxes1: ``[..., N, 4]`` floating boxes in ``fmt``.
        boxes2: ``[..., M, 4]`` floating boxes in ``fmt``; leading dimensions broadcast with ``boxes1``'s.
        kind: one of :data:`IOU_KINDS` (``"iou"``, ``"giou"``, ``"diou"``, ``"ciou"``, ``"eiou"``, ``"siou"``,
            ``"alpha_iou"``; formulas in the module docstring).
        fmt: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.
        eps: stabiliser, placed as in the module docstring.
        alpha: the power of ``kind="alpha_iou"``; ignored by the other kinds.
        tile_rows: rows of ``boxes1`` per row tile (module docstring); ``None`` sizes tiles by
            :func:`tile_rows_for`, a value ``>= N`` computes untiled. The result is the same either way.

    Returns:
        ``[..., N, M]``: entry ``(n, m)`` is the metric of ``boxes1[..., n, :]`` and ``boxes2[..., m, :]``.
    """
    check_alpha(alpha)
    a, b = _pairwise_terms(boxes1, boxes2, kind, fmt, eps)
    return _in_input_dtype(
        _by_row_tiles(lambda tile: (_overlap(tile, b, kind, eps, alpha),), a, b, tile_rows)[0], boxes1, boxes2
    )


def pairwise_iou_and_distance(
    boxes1: torch.Tensor, boxes2: torch.Tensor, fmt: str = "xyxy", eps: float = BOX_EPS, tile_rows: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and DIoU's distance penalty ``ρ² / (cw² + ch² + eps)`` of every pair, from one pass over the pairs.

    ``DIoU = IoU - distance``; DIoU-NMS uses ``IoU - distance ** β``. Shapes and ``tile_rows`` as for
    :func:`pairwise_iou`: ``[..., N, 4]`` and ``[..., M, 4]`` give two ``[..., N, M]`` tensors.
    """
    a, b = _pairwise_terms(boxes1, boxes2, "diou", fmt, eps)

    def iou_and_distance(tile: BoxTerms) -> tuple[torch.Tensor, torch.Tensor]:
        iou = _plain_iou(tile, b, eps)
        return iou, _centre_distance(tile, b, *_enclosing_extents(tile, b), eps)

    iou, distance = _by_row_tiles(iou_and_distance, a, b, tile_rows)
    return _in_input_dtype(iou, boxes1, boxes2), _in_input_dtype(distance, boxes1, boxes2)


def check_tile_rows(tile_rows: object) -> int | None:
    """``tile_rows`` is ``None`` (cache-sized tiles) or a positive int."""
    if tile_rows is not None and (isinstance(tile_rows, bool) or not isinstance(tile_rows, int) or tile_rows < 1):
        raise ValueError(f"tile_rows must be a positive integer or None; got {tile_rows!r}")
    return tile_rows


def _by_row_tiles(
    chain: Callable[[BoxTerms], tuple[torch.Tensor, ...]], a: BoxTerms, b: BoxTerms, tile_rows: int | None
) -> tuple[torch.Tensor, ...]:
    """``chain(a)``, computed on row tiles of the column terms ``a [..., N, 1]`` and concatenated along N."""
    n, m = a.x1.shape[-2], b.x1.shape[-1]
    if not isinstance(n, int) or not isinstance(m, int):  # symbolic (dynamic) shapes: no static tile plan
        return chain(a)
    tile_rows = tile_rows_for(n, m) if check_tile_rows(tile_rows) is None else tile_rows
    if tile_rows >= n or record_tile_plan(n, m, tile_rows):  # an exporter that records plans tiles the graph
        return chain(a)
    tiles = [BoxTerms(*parts) for parts in zip(*(term.split(tile_rows, dim=-2) for term in a))]
    results = [chain(tile) for tile in tiles]
    return tuple(torch.cat(parts, dim=-2) for parts in zip(*results))


def _pairwise_terms(boxes1: object, boxes2: object, kind: str, fmt: str, eps: float) -> tuple[BoxTerms, BoxTerms]:
    """Checked per-box terms, ``boxes1``'s as columns ``[..., N, 1]`` and ``boxes2``'s as rows ``[..., 1, M]``."""
    _check_args(boxes1, boxes2, kind, fmt, eps, min_dim=2)
    broadcast_batch("boxes1", boxes1.shape[:-2], "boxes2", boxes2.shape[:-2])
    with_aspect, with_centre = kind == "ciou", kind in CENTRE_KINDS
    return (box_terms(boxes1, fmt, eps, with_aspect, layout="column", with_centre=with_centre),
            box_terms(boxes2, fmt, eps, with_aspect, layout="row", with_centre=with_centre))


def aligned_iou(
    boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", fmt: str = "xyxy", eps: float = BOX_EPS,
    alpha: float = 3.0,
) -> torch.Tensor:
    """Overlap of corresponding boxes: ``boxes1[..., n, :]`` with ``boxes2[..., n, :]``.

    Args:
        boxes1: ``[..., N, 4]`` floating boxes in ``fmt`` (a single box ``[4]`` works too).
        boxes2: ``[..., N, 4]``; all leading dimensions broadcast with ``boxes1``'s.
        kind, fmt, eps, alpha: as for :func:`pairwise_iou`.

    Returns:
        ``[..., N]``, the broadcast leading shape.
    """
    _check_args(boxes1, boxes2, kind, fmt, eps, min_dim=1)
    check_alpha(alpha)
    broadcast_batch("boxes1", boxes1.shape[:-1], "boxes2", boxes2.shape[:-1])
    with_aspect, with_centre = kind == "ciou", kind in CENTRE_KINDS
    overlap = _overlap(box_terms(boxes1, fmt, eps, with_aspect, with_centre=with_centre),
                       box_terms(boxes2, fmt, eps, with_aspect, with_centre=with_centre), kind, eps, alpha)
    return _in_input_dtype(overlap, boxes1, boxes2)


def check_alpha(alpha: object) -> float:
    """α-IoU's power: a finite number > 0 (checked for every kind, as the modules do; alpha = -1 once gave 2.0)."""
    return check_number("alpha", alpha, 0.0, strict=True)


def _check_args(boxes1: object, boxes2: object, kind: str, fmt: str, eps: object, min_dim: int) -> None:
    check_choice("kind", kind, IOU_KINDS)
    check_choice("fmt", fmt, BOX_FORMATS)
    check_eps(eps)
    check_boxes("boxes1", boxes1, min_dim)
    check_boxes("boxes2", boxes2, min_dim)


def _overlap(a: BoxTerms, b: BoxTerms, kind: str, eps: float, alpha: float = 3.0) -> torch.Tensor:
    if kind == "eiou":
        return _extended_iou(a, b, eps)
    if kind == "giou":
        return _generalized_iou(a, b, eps)
    iou = _plain_iou(a, b, eps)
    if kind == "iou":
        return iou
    if kind == "alpha_iou":
        return iou.clamp(min=eps).pow(alpha)
    enclose_w, enclose_h = _enclosing_extents(a, b)
    if kind == "siou":
        return iou - _siou_costs(a, b, enclose_w, enclose_h, eps)
    diou = iou - _centre_distance(a, b, enclose_w, enclose_h, eps)
    if kind == "diou":
        return diou
    angle_gap = a.aspect_angle - b.aspect_angle
    v = angle_gap * angle_gap
    trade_off = (v / ((v + (1.0 - iou)) + eps)).detach()  # CIoU's α (the docstring's), not alpha_iou's power
    return diou - trade_off * v


def _generalized_iou(a: BoxTerms, b: BoxTerms, eps: float) -> torch.Tensor:
    """GIoU, ``I / (U + eps) − (C − U) / (C + eps)``, with the union ``U`` formed without eps: recovering it as
    ``(U + eps) − eps`` cancels where eps is not small against ``U`` (boxes 1e-4 wide: U ~ 1e-9 = eps / 100, and
    GIoU came out 62 float32 ulps off). As many passes as :func:`_plain_iou` and the old ``− eps``."""
    inter = _intersection(a, b)
    union = (a.area + b.area) - inter
    enclose_w, enclose_h = _enclosing_extents(a, b)
    enclose_area = enclose_w * enclose_h
    return inter / (union + eps) - (enclose_area - union) / (enclose_area + eps)


def _extended_iou(a: BoxTerms, b: BoxTerms, eps: float) -> torch.Tensor:
    """EIoU: signed intersection over ``union + eps`` (module docstring)."""
    ex, ey = torch.minimum(a.x1, b.x1), torch.minimum(a.y1, b.y1)
    lo_x, lo_y = torch.maximum(a.x1, b.x1) - ex, torch.maximum(a.y1, b.y1) - ey
    hi_x, hi_y = torch.minimum(a.x2, b.x2) - ex, torch.minimum(a.y2, b.y2) - ey
    signed = (hi_x * hi_y + torch.minimum(lo_x, hi_x) * torch.minimum(lo_y, hi_y)
              - lo_x * torch.maximum(lo_y, hi_y) - torch.maximum(lo_x, hi_x) * lo_y)
    return signed / (((a.area + eps) + b.area) - signed)


def _siou_costs(a: BoxTerms, b: BoxTerms, enclose_w: torch.Tensor, enclose_h: torch.Tensor, eps: float) -> torch.Tensor:
    """SIoU's ``(Δ + Ω) / 2`` (module docstring)."""
    dx, dy = centre_offsets(a, b)
    dx2, dy2 = dx * dx, dy * dy
    gamma = 2.0 * (dx * dy).abs() / (dx2 + dy2 + eps) - 2.0
    distance = 2.0 - torch.exp(gamma * dx2 / (enclose_w * enclose_w + eps)) - torch.exp(gamma * dy2 / (enclose_h * enclose_h + eps))
    shape_w = 1.0 - torch.exp(-(a.w - b.w).abs() / (torch.maximum(a.w, b.w) + eps))
    shape_h = 1.0 - torch.exp(-(a.h - b.h).abs() / (torch.maximum(a.h, b.h) + eps))
    return 0.5 * (distance + shape_w.pow(4) + shape_h.pow(4))


def _plain_iou(a: BoxTerms, b: BoxTerms, eps: float) -> torch.Tensor:
    """``I / (U + eps)``.

    Every line runs on the pair shape, so each is written to cost one cheap pass (12 for pairwise IoU):
    eps is folded into per-box terms, and each intersection extent is one correctly rounded difference
    of two coordinates, ``min(hi_a, hi_b) - max(lo_a, lo_b)``, clipped at 0. Pairwise (``[..., N, 1]``
    against ``[..., 1, M]``) it is computed negated from two broadcast Max, ``max(lo_a, lo_b) +
    max(-hi_a, -hi_b)``, clipped at 0 from above, the two negated extents multiplying to the
    intersection area: onnxruntime runs a broadcast Max about 3x faster than a broadcast Min (1.6 vs
    5.1 ms per 3000 x 3000 pass), and the negations are per-box. Aligned (terms of one shape) Min is as
    fast as Max and the negations would be extra passes, so it is the plain form. Both give the same
    bits (rounding to nearest is symmetric): on coordinates whose differences are exact in float32
    (integer pixels) the values are those of ``clamp(min(hi) - max(lo), 0)``; a non-overlapping pair may
    give ``-0.0`` for IoU (equal to ``0.0``).
    """
    inter = _intersection(a, b)
    return inter / (((a.area + eps) + b.area) - inter)


def _intersection(a: BoxTerms, b: BoxTerms) -> torch.Tensor:
    """The intersection area of each pair, as :func:`_plain_iou` describes it (plain aligned, negated pairwise)."""
    if _is_aligned(a, b):
        overlap_x = torch.clamp(torch.minimum(a.x2, b.x2) - torch.maximum(a.x1, b.x1), min=0.0)
        overlap_y = torch.clamp(torch.minimum(a.y2, b.y2) - torch.maximum(a.y1, b.y1), min=0.0)
        return overlap_x * overlap_y
    neg_overlap_x = torch.maximum(a.x1, b.x1) + torch.maximum(-a.x2, -b.x2)
    neg_overlap_y = torch.maximum(a.y1, b.y1) + torch.maximum(-a.y2, -b.y2)
    return torch.clamp(neg_overlap_x, max=0.0) * torch.clamp(neg_overlap_y, max=0.0)


def _is_aligned(a: BoxTerms, b: BoxTerms) -> bool:
    """Terms of one shape (an aligned metric): no broadcast, so onnxruntime's Min costs what its Max does."""
    return a.x1.shape == b.x1.shape


def _enclosing_extents(a: BoxTerms, b: BoxTerms) -> tuple[torch.Tensor, torch.Tensor]:
    """Width and height of the smallest box enclosing each pair, ``max(hi) - min(lo)``; pairwise as ``max(hi) + max(-lo)`` (Max only, as above)."""
    if _is_aligned(a, b):
        return (torch.maximum(a.x2, b.x2) - torch.minimum(a.x1, b.x1),
                torch.maximum(a.y2, b.y2) - torch.minimum(a.y1, b.y1))
    return (torch.maximum(a.x2, b.x2) + torch.maximum(-a.x1, -b.x1),
            torch.maximum(a.y2, b.y2) + torch.maximum(-a.y1, -b.y1))


def _in_input_dtype(result: torch.Tensor, boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """``result`` (computed in float32 for fp16/bf16 boxes, see :func:`box_terms`) in the inputs' promoted dtype."""
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    return result if result.dtype == dtype else result.to(dtype)


def _centre_distance(a: BoxTerms, b: BoxTerms, enclose_w: torch.Tensor, enclose_h: torch.Tensor, eps: float) -> torch.Tensor:
    """``ρ² / (cw² + ch² + eps)``: squared centre distance over the enclosing box's squared diagonal."""
    dx, dy = centre_offsets(a, b)
    return (dx * dx + dy * dy) / (enclose_w * enclose_w + enclose_h * enclose_h + eps)


class PairwiseIoU(nn.Module):
    """Module form of :func:`pairwise_iou`: ``forward(boxes1 [..., N, 4], boxes2 [..., M, 4]) -> [..., N, M]``."""

    def __init__(self, kind: str = "iou", fmt: str = "xyxy", eps: float = BOX_EPS, alpha: float = 3.0,
                 tile_rows: int | None = None) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, IOU_KINDS)
        self.fmt = check_choice("fmt", fmt, BOX_FORMATS)
        self.eps = check_eps(eps)
        self.alpha = check_alpha(alpha)
        self.tile_rows = check_tile_rows(tile_rows)

    def forward(self, boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        return pairwise_iou(boxes1, boxes2, self.kind, self.fmt, self.eps, self.alpha, self.tile_rows)

    def extra_repr(self) -> str:
        power = f", alpha={self.alpha}" if self.kind == "alpha_iou" else ""
        tiles = "" if self.tile_rows is None else f", tile_rows={self.tile_rows}"
        return f"kind={self.kind!r}, fmt={self.fmt!r}, eps={self.eps}{power}{tiles}"


class AlignedIoU(PairwiseIoU):
    """Module form of :func:`aligned_iou`: ``forward(boxes1 [..., N, 4], boxes2 [..., N, 4]) -> [..., N]``."""

    def __init__(self, kind: str = "iou", fmt: str = "xyxy", eps: float = BOX_EPS, alpha: float = 3.0) -> None:
        super().__init__(kind, fmt, eps, alpha)  # no tile_rows: an aligned metric has no N x M plane

    def forward(self, boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        return aligned_iou(boxes1, boxes2, self.kind, self.fmt, self.eps, self.alpha)
