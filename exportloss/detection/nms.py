"""Fixed-shape non-maximum suppression for deployment graphs: Fast NMS and Cluster-NMS.

Greedy NMS walks the candidates in descending score order and keeps one unless a *kept* candidate of
the same class overlaps it by more than ``iou_thr``. Exported naively it becomes ONNX
NonMaxSuppression, whose output length depends on the data. The matrix forms here need no such
operator. With ``S[i, j] = 1`` when candidate ``i`` precedes ``j`` (higher score), has the same
class and ``overlap(i, j) > iou_thr``, and ``keep⁰ = 1``:

    keepᵗ⁺¹[j] = 1  if  Σᵢ keepᵗ[i] · S[i, j] = 0  else 0

One iteration is **Fast NMS** (YOLACT): already-suppressed candidates still suppress, so it can
drop boxes greedy NMS keeps. Iterating is **Cluster-NMS** (Zheng et al.): after ``t`` iterations
every candidate whose longest chain of suppressors is shorter than ``t`` is decided exactly as
greedy NMS decides it, so ``iterations >= candidates`` always reproduces greedy NMS, and far fewer
suffice on real detector output (:data:`~exportloss.detection.options.DEFAULT_ITERATIONS`, measured; see the README).

``overlap`` is IoU (``kind="iou"``) or the DIoU-NMS criterion ``IoU − (ρ² / (c² + eps))^β``
(``kind="diou"``, ρ the centre distance, c the enclosing box's diagonal); IoU is
``I / (U + eps)`` as in :mod:`exportloss.boxes.iou`.

**Candidates.** Scores ``[B, N, C]`` make ``N·C`` (box, class) pairs (a box may be detected as
several classes, as in mmdet's multiclass NMS); scores ``[B, N]`` make ``N`` pairs of class 0. The
``candidates`` highest-scoring pairs enter NMS (ONNX TopK with a constant K < 3840, TensorRT's
limit); of those, only pairs with ``score > score_thr`` can be kept. **Tie rule:** pairs are ordered
by score, descending, and equal scores by flat index ``n·C + c``, ascending: the earlier box (then
the lower class) counts as higher-scored. The graph enforces this itself, on every backend (the CUDA
TopK and TensorRT's order ties arbitrarily): the K-th best score is unambiguous, the pairs tied at it
are admitted lowest index first (CumSum), each candidate's rank comes from exact pairwise
comparisons, and every TopK sorts unique keys. Eager PyTorch runs the same code.

**Non-finite input.** A NaN score ranks below every score, as ``-inf``: it is never kept (it fails
every finite ``score_thr``) and never displaces a real pair from the candidates. A box with a NaN
coordinate overlaps nothing (NaN fails the ``> iou_thr`` test): it neither suppresses nor is
suppressed, and if its score qualifies it is reported with its NaN coordinates, so bad input stays
visible. ``±inf`` scores order as numbers.

**Outputs** (fixed shapes, as TensorRT's EfficientNMS plugin had them): ``num_dets [B]`` (int64),
``det_boxes [B, max_det, 4]``, ``det_scores [B, max_det]``, ``det_classes [B, max_det]`` (int64).
Row ``b`` holds its ``num_dets[b]`` detections first, in descending score order; the remaining slots
hold zero boxes, zero scores and class -1. The result equals ``torchvision.ops.batched_nms`` on the
candidate pairs followed by a cut to the first ``max_det`` (with IoU's eps, pairs whose IoU lies
within ~1e-7 of ``iou_thr`` may fall on the other side), and equals it on all pairs whenever at most
``candidates`` pairs score above ``score_thr``.

Classes never suppress each other: the class test is an exact comparison, not torchvision's
coordinate-offset trick, which loses float32 precision on large offsets.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..boxes.iou import pairwise_iou, pairwise_iou_and_distance
from ..ops.checks import check_float_tensor
from .options import NMSOptions, _SuppressionOptions
from ..ops.options import DEFAULT

MAX_PAIRS = 1 << 24
"""``N·C`` limit: the dynamo exporter divides flat pair indices in float32, and the tie rule's sort keys
and counts are float32; both are exact below 2**24."""
_KEY_DTYPE = torch.float32
"""Sort keys, ranks and counts: float32 whatever the inputs' dtype (float16 holds integers only to 2048)."""


class Detections(NamedTuple):
    num_dets: torch.Tensor
    det_boxes: torch.Tensor
    det_scores: torch.Tensor
    det_classes: torch.Tensor


def cluster_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_thr: float = DEFAULT,
    kind: str = DEFAULT,
    diou_beta: float = DEFAULT,
    score_thr: float = DEFAULT,
    max_det: int = DEFAULT,
    iterations: int | None = DEFAULT,
    candidates: int | None = DEFAULT,
    eps: float = DEFAULT,
    *,
    options: NMSOptions | None = None,
) -> Detections:
    """Batched multi-class Cluster-NMS with fixed-shape outputs (see the module docstring).

    Args:
        boxes: ``[B, N, 4]`` xyxy boxes.
        scores: ``[B, N, C]`` per-class scores, or ``[B, N]`` (one class, reported as class 0).
        iou_thr: a candidate is suppressed when its overlap with a kept one is ``> iou_thr``; in [-1, 1].
        kind: ``"iou"`` or ``"diou"`` (DIoU-NMS).
        diou_beta: the exponent β of DIoU-NMS's penalty ``(ρ²/(c² + eps))^β``; ignored for IoU.
        score_thr: only pairs with ``score > score_thr`` can be kept; finite.
        max_det: detections per image in the outputs.
        iterations: Cluster-NMS iterations; ``1`` is Fast NMS, ``>= candidates`` is exactly greedy
            NMS, ``None`` is :data:`~exportloss.detection.options.DEFAULT_ITERATIONS`.
        candidates: how many top-scoring pairs enter NMS; default ``min(N·C, 1000)``, at most 3839.
        eps: stabiliser of IoU and of DIoU's diagonal; finite and > 0.
        options: a prepared :class:`~exportloss.detection.options.NMSOptions` instead of the keywords above.

    Returns:
        :class:`Detections` ``(num_dets [B], det_boxes [B, max_det, 4], det_scores [B, max_det],
        det_classes [B, max_det])``.
    """
    options = NMSOptions.resolve(options, iou_thr=iou_thr, kind=kind, diou_beta=diou_beta, score_thr=score_thr,
                                 max_det=max_det, iterations=iterations, candidates=candidates, eps=eps)
    return _cluster_nms(boxes, scores, options)


def fast_nms(boxes: torch.Tensor, scores: torch.Tensor, options: NMSOptions | None = None, **keywords) -> Detections:
    """Fast NMS: :func:`cluster_nms` with one iteration (may drop boxes greedy NMS would keep).

    ``options`` or the keywords of :func:`cluster_nms` but ``iterations``, which is always 1 (an
    ``options`` object's ``iterations`` is replaced by 1; the keyword is refused).
    """
    if "iterations" in keywords:
        raise TypeError("fast_nms() runs one iteration; use cluster_nms(iterations=...) for more")
    return _cluster_nms(boxes, scores, _fast(NMSOptions.resolve(options, **keywords)))


def _fast(options: NMSOptions) -> NMSOptions:
    return dataclasses.replace(options, iterations=1)


def _check_inputs(boxes: object, scores: object, box_size: int = 4) -> None:
    boxes = check_float_tensor("boxes", boxes)
    scores = check_float_tensor("scores", scores)
    if boxes.dim() != 3 or boxes.shape[-1] != box_size:
        raise ValueError(f"boxes must have shape [B, N, {box_size}]; got {list(boxes.shape)}")
    if scores.dim() not in (2, 3) or scores.shape[:2] != boxes.shape[:2]:
        raise ValueError(
            f"scores must have shape [B, N] or [B, N, C] with B, N = {list(boxes.shape[:2])} from boxes; "
            f"got {list(scores.shape)}"
        )
    if scores.shape[1:].numel() >= MAX_PAIRS:
        raise ValueError(f"scores must hold fewer than 2**24 (box, class) pairs per image; got {scores.shape[1:].numel()}")


def _cluster_nms(boxes: torch.Tensor, scores: torch.Tensor, options: _SuppressionOptions, overlap_fn=None,
                 box_size: int = 4) -> Detections:
    """``overlap_fn(cand_boxes [B, K, box_size], options) -> [B, K, K]`` replaces :func:`_overlap` (rotated NMS)."""
    _check_inputs(boxes, scores, box_size)
    batch, num_boxes = boxes.shape[:2]
    num_classes = scores.shape[2] if scores.dim() == 3 else 1
    num_pairs = num_boxes * num_classes
    k = options.candidate_count(num_pairs)
    flat_scores = scores.reshape(batch, num_pairs)
    # NaN scores rank below every score (-inf fails every score_thr), so they never take a real pair's slot.
    flat_scores = torch.where(flat_scores == flat_scores, flat_scores, float("-inf"))  # x == x is false for NaN alone; Equal runs everywhere, IsNaN not on every CUDA provider
    cand_index = _top_candidates(flat_scores, k)
    cand_scores = flat_scores.gather(1, cand_index)
    if num_classes > 1:
        box_index = torch.div(cand_index, num_classes, rounding_mode="trunc")  # indices are >= 0
        cand_classes = cand_index - box_index * num_classes
    else:
        box_index, cand_classes = cand_index, torch.zeros_like(cand_index)
    cand_boxes = boxes.gather(1, box_index.unsqueeze(-1).expand(batch, k, box_size))

    # precedes[b, i, j]: candidate i comes before j in the tie rule's order (higher score, or the same
    # score and a lower flat index; candidates are in index order, so a lower position). It is a strict
    # total order, so each candidate's rank (how many precede it) is a unique integer in [0, K).
    position = torch.arange(k, device=boxes.device)
    ahead, behind = cand_scores.unsqueeze(2), cand_scores.unsqueeze(1)
    precedes = (ahead > behind) | ((ahead == behind) & (position.unsqueeze(1) < position))
    rank = precedes.to(_KEY_DTYPE).sum(dim=1)  # [B, K], exact integers below 2**24

    # suppressed_by[b, j, i] = 1 when candidate i may suppress candidate j (S transposed: the overlap
    # and the class test are symmetric), so that each iteration is one matrix-vector product with the
    # [B, K, 1] keep column. Candidates under score_thr come last in the order, so they can only
    # suppress each other and need no mask here. A box with a NaN coordinate has NaN overlaps, which
    # fail the `>` test: it overlaps nothing.
    suppressed_by = ((overlap_fn or _overlap)(cand_boxes, options) > options.iou_thr) & precedes.transpose(1, 2)
    if num_classes > 1:
        suppressed_by = suppressed_by & (cand_classes.unsqueeze(2) == cand_classes.unsqueeze(1))
    suppressed_by = suppressed_by.to(boxes.dtype)
    keep = torch.ones(batch, k, 1, dtype=boxes.dtype, device=boxes.device)
    for _ in range(options.iterations):
        # Exact under any matmul precision: 0/1 entries are exact in TF32 (and fp16/bf16), their
        # products are 0 or 1, and a float32 accumulation of at most K < 2**24 ones is an exact count.
        keep = (torch.matmul(suppressed_by, keep) < 0.5).to(boxes.dtype)
    kept = (keep.squeeze(2) > 0.5) & (cand_scores > options.score_thr)

    # Slots in the tie rule's order: unique keys, kept candidates (K, 2K] by rank, the others (0, K],
    # so TopK has no ties to break and the first num_dets slots are the kept ones.
    slot_key, slot = torch.where(kept, 2 * k - rank, k - rank).topk(min(options.max_det, k), dim=1)
    filled = slot_key > k
    det_boxes = torch.where(filled.unsqueeze(-1), cand_boxes.gather(1, slot.unsqueeze(-1).expand(-1, -1, box_size)), 0.0)
    det_scores = torch.where(filled, cand_scores.gather(1, slot), 0.0)
    det_classes = torch.where(filled, cand_classes.gather(1, slot), -1)
    missing = options.max_det - slot.shape[1]
    if missing:
        det_boxes = F.pad(det_boxes, (0, 0, 0, missing))
        det_scores = F.pad(det_scores, (0, missing))
        det_classes = F.pad(det_classes, (0, missing), value=-1)
    num_dets = kept.sum(dim=1).clamp(max=options.max_det)
    return Detections(num_dets, det_boxes, det_scores, det_classes)


def _top_candidates(flat_scores: torch.Tensor, k: int) -> torch.Tensor:
    """Flat indices ``[B, k]``, ascending, of the ``k`` best of ``[B, P]`` scores under the tie rule.

    No backend's tie order enters: TopK's *values* are unambiguous, so the k-th best score ``t`` is
    too; every pair above ``t`` is a candidate, and of the pairs equal to ``t`` the lowest-index ones
    fill the remaining places (a CumSum over the tie mask counts them in index order). The chosen
    pairs get the unique keys ``k + 1 - (their count in index order)``, from k down to 1 (exact in
    float32 as ``P < 2**24``, see :data:`MAX_PAIRS`), and the rest 0, so a second TopK returns exactly
    the chosen pairs, in index order. (CumSums rather than an arange over the P pairs, which the
    exporter would store as a P-element constant.)
    """
    kth = flat_scores.topk(k, dim=1).values[:, k - 1:]
    above = flat_scores > kth
    tied = flat_scores == kth
    places_left = k - above.to(_KEY_DTYPE).sum(dim=1, keepdim=True)
    chosen = (above | (tied & (tied.to(_KEY_DTYPE).cumsum(dim=1) <= places_left))).to(_KEY_DTYPE)
    key = chosen * (k + 1 - chosen.cumsum(dim=1))
    return key.topk(k, dim=1).indices


def _overlap(boxes: torch.Tensor, options: NMSOptions) -> torch.Tensor:
    """``[B, K, K]`` NMS criterion of the candidates with each other."""
    if options.kind == "iou":
        return pairwise_iou(boxes, boxes, "iou", eps=options.eps)
    iou, distance = pairwise_iou_and_distance(boxes, boxes, eps=options.eps)
    return iou - (distance if options.diou_beta == 1.0 else distance.pow(options.diou_beta))


class ClusterNMS(nn.Module):
    """Module form of :func:`cluster_nms`: ``forward(boxes [B, N, 4], scores [B, N(, C)]) -> Detections``.

    ``ClusterNMS(NMSOptions(kind="diou"))`` or ``ClusterNMS(kind="diou")``: an
    :class:`~exportloss.detection.options.NMSOptions` or its fields as keywords; kept as ``self.options``.
    """

    def __init__(self, options: NMSOptions | None = None, **keywords) -> None:
        super().__init__()
        self.options = NMSOptions.resolve(options, **keywords)

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> Detections:
        return _cluster_nms(boxes, scores, self.options)

    def extra_repr(self) -> str:
        return self.options.fields_repr()


class FastNMS(ClusterNMS):
    """Fast NMS: :class:`ClusterNMS` with ``iterations=1`` (whatever ``options`` says)."""

    def __init__(self, options: NMSOptions | None = None, **keywords) -> None:
        super().__init__(_fast(NMSOptions.resolve(options, **keywords)))
