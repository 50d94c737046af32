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
suffice on real detector output (``iterations="auto"``: :data:`~exportloss.detection.options.AUTO_ITERATIONS`,
measured; see the README). No fixed count is enough for every input (a chain of boxes each overlapping
only its neighbours needs as many iterations as boxes), so the graph certifies each image instead:

**Exactness flags.** ``converged [B]``: greedy NMS's keep vector is the iteration's only fixed point, and a
prefix (in the score order) of the current vector on which one more iteration changes nothing is a prefix
of greedy's (each candidate is decided by the ones before it). The graph runs that one more iteration:
``converged`` is true when it changes no candidate above ``score_thr``, or when ``max_det`` kept candidates
precede the first it changes; it is false exactly when the detections differ from greedy NMS's over the
candidates. ``num_capped [B]``: pairs above ``score_thr`` left out by the ``candidates`` cap. They rank
below every candidate, so they change no candidate's fate and could only add detections after the
candidates' kept ones: the detections are greedy NMS's over *all* pairs when ``converged`` and
(``num_capped == 0`` or ``num_dets == max_det``).

``overlap`` is IoU (``kind="iou"``) or the DIoU-NMS criterion ``IoU − (ρ² / (c² + eps))^β``
(``kind="diou"``, ρ the centre distance, c the enclosing box's diagonal); IoU is
``I / (U + eps)`` as in :mod:`exportloss.boxes.iou`.

**Candidates.** With ``classes="all"``, scores ``[B, N, C]`` make ``N·C`` (box, class) pairs (a box may be
detected as several classes, as in mmdet's multiclass NMS); with ``"best"`` (ultralytics) and
``"agnostic"`` each box is one pair, as its best class (the lowest on ties, :func:`first_argmax`), and
``"agnostic"`` drops the class test. Scores ``[B, N]`` make ``N`` pairs of class 0. The ``candidates``
highest-scoring pairs enter NMS (ONNX TopK with a constant K; TensorRT needs K < 3840); of those, only
pairs with ``score > score_thr`` can be kept. **Tie rule:** pairs are ordered
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

**Outputs** (fixed shapes): :class:`Detections` ``num_dets [B]`` (int64), ``det_boxes [B, max_det, 4]``,
``det_scores [B, max_det]``, ``det_classes [B, max_det]`` (int64), ``det_indices [B, max_det]`` (int64, each
detection's box among the ``N``), ``converged [B]`` (bool), ``num_capped [B]`` (int64); or, with
``outputs="efficientnms"``, TensorRT EfficientNMS's :class:`EfficientNMSDetections` (``num_detections [B, 1]``,
``detection_classes`` and ``detection_indices`` int32, ...). Row ``b`` holds its ``num_dets[b]`` detections
first, in descending score order; the remaining slots hold zero boxes, zero scores, class -1 and index -1.
For IoU the result equals ``torchvision.ops.batched_nms`` on the candidate pairs followed by a cut to the
first ``max_det`` (with IoU's eps, pairs whose IoU lies within ~1e-7 of ``iou_thr`` may fall on the other
side) wherever ``converged``, and on all pairs under the rule above.

Classes never suppress each other (except with ``classes="agnostic"``): the class test is an exact comparison, not torchvision's
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
from ..ops.ties import first_argmax
from .options import NMSOptions, _SuppressionOptions
from ..ops.options import DEFAULT

MAX_PAIRS = 1 << 24
"""``N·C`` limit: the dynamo exporter divides flat pair indices in float32, and the tie rule's sort keys
and counts are float32; both are exact below 2**24."""
_KEY_DTYPE = torch.float32
"""Sort keys, ranks and counts: float32 whatever the inputs' dtype (float16 holds integers only to 2048)."""


class Detections(NamedTuple):
    """The default output convention (``outputs="default"``)."""

    num_dets: torch.Tensor
    """``[B]`` int64: detections in each row."""
    det_boxes: torch.Tensor
    """``[B, max_det, 4]`` (rotated: 5); padding: zeros."""
    det_scores: torch.Tensor
    """``[B, max_det]``; padding: 0."""
    det_classes: torch.Tensor
    """``[B, max_det]`` int64; padding: -1."""
    det_indices: torch.Tensor
    """``[B, max_det]`` int64: each detection's box in the input's ``N`` boxes (to gather masks, keypoints); padding: -1."""
    converged: torch.Tensor
    """``[B]`` bool: the detections are greedy NMS's over the candidates (one more iteration would change none)."""
    num_capped: torch.Tensor
    """``[B]`` int64: pairs scoring ``> score_thr`` that the candidate cap left out of NMS (see the module docstring)."""


class EfficientNMSDetections(NamedTuple):
    """TensorRT EfficientNMS's output convention (``outputs="efficientnms"``), plus the same index and flags."""

    num_detections: torch.Tensor
    """``[B, 1]`` int32."""
    detection_boxes: torch.Tensor
    """``[B, max_det, 4]`` (rotated: 5)."""
    detection_scores: torch.Tensor
    """``[B, max_det]``."""
    detection_classes: torch.Tensor
    """``[B, max_det]`` int32; padding: -1."""
    detection_indices: torch.Tensor
    """``[B, max_det]`` int32; padding: -1."""
    converged: torch.Tensor
    """``[B]`` bool, as :attr:`Detections.converged`."""
    num_capped: torch.Tensor
    """``[B]`` int32, as :attr:`Detections.num_capped`."""


def cluster_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_thr: float = DEFAULT,
    kind: str = DEFAULT,
    diou_beta: float = DEFAULT,
    score_thr: float = DEFAULT,
    max_det: int = DEFAULT,
    iterations: int | str = DEFAULT,
    candidates: int | None = DEFAULT,
    classes: str = DEFAULT,
    outputs: str = DEFAULT,
    eps: float = DEFAULT,
    *,
    options: NMSOptions | None = None,
) -> Detections | EfficientNMSDetections:
    """Batched multi-class Cluster-NMS with fixed-shape outputs (see the module docstring).

    Args:
        boxes: ``[B, N, 4]`` xyxy boxes.
        scores: ``[B, N, C]`` per-class scores, or ``[B, N]`` (one class, reported as class 0).
        iou_thr: a candidate is suppressed when its overlap with a kept one is ``> iou_thr``; in [-1, 1].
        kind: ``"iou"`` or ``"diou"`` (DIoU-NMS).
        diou_beta: the exponent β of DIoU-NMS's penalty ``(ρ²/(c² + eps))^β``; ignored for IoU.
        score_thr: only pairs with ``score > score_thr`` can be kept; finite.
        max_det: detections per image in the outputs, >= 1.
        iterations: Cluster-NMS iterations; ``1`` is Fast NMS, ``>= candidates`` is exactly greedy
            NMS; ``"auto"`` is :data:`~exportloss.detection.options.AUTO_ITERATIONS` (at most the candidates).
            The ``converged`` output says per image whether they sufficed.
        candidates: how many top-scoring pairs enter NMS, >= 1; default ``min(pairs, 1000)``.
        classes: ``"all"`` (every (box, class) pair), ``"best"`` (each box's best class), ``"agnostic"``
            (each box's best class; classes suppress each other).
        outputs: ``"default"`` (:class:`Detections`) or ``"efficientnms"`` (:class:`EfficientNMSDetections`).
        eps: stabiliser of IoU and of DIoU's diagonal; finite and > 0.
        options: a prepared :class:`~exportloss.detection.options.NMSOptions` instead of the keywords above.

    Returns:
        :class:`Detections` ``(num_dets [B], det_boxes [B, max_det, 4], det_scores [B, max_det],
        det_classes [B, max_det], det_indices [B, max_det], converged [B], num_capped [B])``, or with
        ``outputs="efficientnms"`` :class:`EfficientNMSDetections`.
    """
    options = NMSOptions.resolve(options, iou_thr=iou_thr, kind=kind, diou_beta=diou_beta, score_thr=score_thr,
                                 max_det=max_det, iterations=iterations, candidates=candidates, classes=classes,
                                 outputs=outputs, eps=eps)
    return _cluster_nms(boxes, scores, options)


def fast_nms(boxes: torch.Tensor, scores: torch.Tensor, options: NMSOptions | None = None,
             **keywords) -> Detections | EfficientNMSDetections:
    """Fast NMS: :func:`cluster_nms` with one iteration (may drop boxes greedy NMS would keep; ``converged``
    is false exactly where it did).

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
                 box_size: int = 4) -> Detections | EfficientNMSDetections:
    """``overlap_fn(cand_boxes [B, K, box_size], options) -> [B, K, K]`` replaces :func:`_overlap` (rotated NMS)."""
    _check_inputs(boxes, scores, box_size)
    batch, num_boxes = boxes.shape[:2]
    num_classes = scores.shape[2] if scores.dim() == 3 else 1
    # NaN scores rank below every score (-inf fails every score_thr), so they never take a real pair's slot.
    scores = scores.reshape(batch, num_boxes, num_classes)
    scores = torch.where(scores == scores, scores, float("-inf"))  # x == x is false for NaN alone; Equal runs everywhere, IsNaN not on every CUDA provider
    every_pair = options.classes == "all" or num_classes == 1
    if every_pair:  # pair n·C + c is box n as class c
        pair_scores = scores.reshape(batch, num_boxes * num_classes)
    else:  # pair n is box n as its best class (the lowest on ties)
        pair_scores, best_class = (t.squeeze(2) for t in first_argmax(scores, 2))
    k = options.candidate_count(pair_scores.shape[1])
    cand_index = _top_candidates(pair_scores, k)
    cand_scores = pair_scores.gather(1, cand_index)
    if not every_pair:
        box_index, cand_classes = cand_index, best_class.gather(1, cand_index)
    elif num_classes > 1:
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
    if num_classes > 1 and options.classes != "agnostic":
        suppressed_by = suppressed_by & (cand_classes.unsqueeze(2) == cand_classes.unsqueeze(1))
    suppressed_by = suppressed_by.to(boxes.dtype)

    def iterate(keep: torch.Tensor) -> torch.Tensor:
        # Exact under any matmul precision: 0/1 entries are exact in TF32 (and fp16/bf16), their
        # products are 0 or 1, and a float32 accumulation of at most K < 2**24 ones is an exact count.
        return (torch.matmul(suppressed_by, keep) < 0.5).to(boxes.dtype)

    keep = torch.ones(batch, k, 1, dtype=boxes.dtype, device=boxes.device)
    for _ in range(options.iteration_count(k)):
        keep = iterate(keep)
    above = cand_scores > options.score_thr
    kept = (keep.squeeze(2) > 0.5) & above

    # The certificate: the candidates ranked before the first one that one more iteration would change
    # form a prefix on which `keep` is a fixed point, and greedy NMS's keep vector is the only fixed point
    # on a prefix (each candidate is decided by the ones before it). So the detections are greedy NMS's
    # exactly when no candidate above score_thr would change, or max_det kept ones precede the first change.
    changed = (iterate(keep).squeeze(2) != keep.squeeze(2)) & above
    first_change = torch.where(changed, rank, float(k)).amin(dim=1, keepdim=True)
    kept_before_change = (kept & (rank < first_change)).sum(dim=1)
    converged = (first_change.squeeze(1) >= k) | (kept_before_change >= options.max_det)
    # Counted in float32, exact below 2**24 pairs (MAX_PAIRS): onnxruntime's int64 ReduceSum over N·C pairs costs ~1 ms.
    num_capped = ((pair_scores > options.score_thr).to(_KEY_DTYPE).sum(dim=1) - above.to(_KEY_DTYPE).sum(dim=1)).to(torch.int64)

    # Slots in the tie rule's order: unique keys, kept candidates (K, 2K] by rank, the others (0, K],
    # so TopK has no ties to break and the first num_dets slots are the kept ones.
    slot_key, slot = torch.where(kept, 2 * k - rank, k - rank).topk(min(options.max_det, k), dim=1)
    filled = slot_key > k
    det_boxes = torch.where(filled.unsqueeze(-1), cand_boxes.gather(1, slot.unsqueeze(-1).expand(-1, -1, box_size)), 0.0)
    det_scores = torch.where(filled, cand_scores.gather(1, slot), 0.0)
    det_classes = torch.where(filled, cand_classes.gather(1, slot), -1)
    det_indices = torch.where(filled, box_index.gather(1, slot), -1)
    missing = options.max_det - slot.shape[1]
    if missing:
        det_boxes = F.pad(det_boxes, (0, 0, 0, missing))
        det_scores = F.pad(det_scores, (0, missing))
        det_classes = F.pad(det_classes, (0, missing), value=-1)
        det_indices = F.pad(det_indices, (0, missing), value=-1)
    num_dets = kept.sum(dim=1).clamp(max=options.max_det)
    if options.outputs == "efficientnms":
        return EfficientNMSDetections(num_dets.to(torch.int32).unsqueeze(1), det_boxes, det_scores,
                                      det_classes.to(torch.int32), det_indices.to(torch.int32), converged,
                                      num_capped.to(torch.int32))
    return Detections(num_dets, det_boxes, det_scores, det_classes, det_indices, converged, num_capped)


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

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> Detections | EfficientNMSDetections:
        return _cluster_nms(boxes, scores, self.options)

    def extra_repr(self) -> str:
        return self.options.fields_repr()


class FastNMS(ClusterNMS):
    """Fast NMS: :class:`ClusterNMS` with ``iterations=1`` (whatever ``options`` says)."""

    def __init__(self, options: NMSOptions | None = None, **keywords) -> None:
        super().__init__(_fast(NMSOptions.resolve(options, **keywords)))


class NMSHead(ClusterNMS):
    """NMS as the last module of a detector exported from PyTorch: :class:`ClusterNMS` under the name of its job.

    ``forward(boxes [B, N, 4] xyxy, scores [B, N, C]) -> Detections`` (or :class:`EfficientNMSDetections` with
    ``outputs="efficientnms"``); options as :class:`ClusterNMS` takes them::

        class Deployed(nn.Module):
            def __init__(self, detector):
                super().__init__()
                self.detector = detector
                self.nms = NMSHead(score_thr=0.25, iou_thr=0.45, max_det=300, classes="best", outputs="efficientnms")

            def forward(self, images):
                boxes, scores = self.detector(images)  # your detector's xyxy boxes and per-class scores
                return self.nms(boxes, scores)
    """
