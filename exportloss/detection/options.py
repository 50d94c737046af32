"""The options of detection post-processing, each written once as a validated frozen dataclass.

:class:`NMSOptions` (axis-aligned Cluster/Fast NMS) and :class:`RotatedNMSOptions` (rotated Cluster-NMS)
share the candidate, threshold and output options; :class:`AssignOptions` is :func:`exportloss.max_iou_assign`'s
and :class:`MatchOptions` :func:`exportloss.detection.match_metrics`'s. The keyword functions build them,
the modules store them as ``module.options``, and :mod:`exportloss.reference.detection` reads the same objects.
Semantics of every option: the module docstrings of :mod:`exportloss.detection.nms`,
:mod:`exportloss.detection.rotated_nms`, :mod:`exportloss.detection.assign` and
:mod:`exportloss.detection.match_metrics`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from ..boxes.iou import IOU_KINDS
from ..boxes.rotated import ROTATED_KINDS
from ..ops.checks import check_choice, check_eps, check_interval, check_number
from ..ops.options import Options

NMS_KINDS = ("iou", "diou")
DEFAULT_NEG_THR = 0.4
"""mmdet's usual ``neg_iou_thr``: :class:`AssignOptions`' ``neg_thr`` when none is given (capped at ``pos_thr``)."""
ASSIGN_KINDS = ("iou", "diou")
TOPK_LIMIT = 3840
"""TensorRT's TopK needs a constant ``K < 3840``."""
DEFAULT_CANDIDATES = 1000
DEFAULT_ITERATIONS = 16
"""Cluster-NMS iterations when none are given. Measured with ``tools/measure_cluster_iterations.py``
on detector-like scenes of 1000 boxes: the slowest needed 10 iterations to reach greedy NMS's full keep
set (class-agnostic DIoU); 16 leaves margin. Each iteration is one [K, K] x [K, 1] product: the 16 add
about a fifth to the catalog graph's onnxruntime CPU time (K = 1000)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class _SuppressionOptions(Options):
    """What every Cluster-NMS shares: thresholds, candidates, iterations, output size, eps."""

    iou_thr: float = 0.5
    """A candidate is suppressed when its overlap with a kept one is ``> iou_thr``; in [-1, 1]."""
    score_thr: float = 0.05
    """Only pairs with ``score > score_thr`` can be kept; finite (scores may be logits)."""
    max_det: int = 100
    """Detections per image in the outputs, in [1, 3839]."""
    iterations: int | None = None
    """Cluster-NMS iterations: ``1`` is Fast NMS, ``>= candidates`` exactly greedy NMS; ``None`` stores
    :data:`DEFAULT_ITERATIONS`."""
    candidates: int | None = None
    """How many top-scoring pairs enter NMS, in [1, 3839]; ``None``: ``min(N·C, 1000)``."""
    eps: float = 1e-7
    """Stabiliser of the overlap; finite and > 0."""

    def __post_init__(self) -> None:
        iou_thr = check_interval("iou_thr", self.iou_thr, -1.0, 1.0)  # IoU lies in [0, 1], DIoU-NMS's criterion in [-1, 1]
        if not (isinstance(self.score_thr, (int, float)) and math.isfinite(self.score_thr)):  # scores may be logits: any real
            raise ValueError(f"score_thr must be a finite number; got {self.score_thr!r}")
        eps = check_eps(self.eps)
        if not (isinstance(self.max_det, int) and 1 <= self.max_det < TOPK_LIMIT):
            raise ValueError(f"max_det must be an int in [1, {TOPK_LIMIT - 1}] (TensorRT's TopK limit); got {self.max_det!r}")
        if self.iterations is not None and not (isinstance(self.iterations, int) and self.iterations >= 1):
            raise ValueError(f"iterations must be a positive int or None; got {self.iterations!r}")
        if self.candidates is not None and not (isinstance(self.candidates, int) and 1 <= self.candidates < TOPK_LIMIT):
            raise ValueError(
                f"candidates must be an int in [1, {TOPK_LIMIT - 1}] (TensorRT's TopK limit); got {self.candidates!r}"
            )
        iterations = DEFAULT_ITERATIONS if self.iterations is None else self.iterations
        self._normalise(iou_thr=iou_thr, score_thr=float(self.score_thr), eps=eps, iterations=iterations)

    def candidate_count(self, num_pairs: int) -> int:
        """How many of ``num_pairs`` (box, class) pairs enter NMS."""
        return min(self.candidates or DEFAULT_CANDIDATES, num_pairs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NMSOptions(_SuppressionOptions):
    """Options of :func:`exportloss.cluster_nms`, :class:`exportloss.ClusterNMS` and Fast NMS (keyword fields)."""

    kind: str = "iou"
    """The overlap criterion: ``"iou"`` or ``"diou"`` (DIoU-NMS)."""
    diou_beta: float = 1.0
    """The exponent β of DIoU-NMS's penalty ``(ρ²/(c² + eps))^β``, > 0; unused for IoU."""

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, NMS_KINDS)
        super().__post_init__()
        self._normalise(diou_beta=check_number("diou_beta", self.diou_beta, 0.0, strict=True))


@dataclasses.dataclass(frozen=True, kw_only=True)
class RotatedNMSOptions(_SuppressionOptions):
    """Options of :func:`exportloss.rotated_cluster_nms` and :class:`exportloss.RotatedClusterNMS`: those of
    :class:`NMSOptions` with ``criterion`` in place of ``kind`` and ``diou_beta``."""

    criterion: str = "iou"
    """The overlap of rotated boxes: ``"iou"`` (exact polygon IoU) or ``"probiou"``."""

    def __post_init__(self) -> None:
        check_choice("criterion", self.criterion, ROTATED_KINDS)
        super().__post_init__()


@dataclasses.dataclass(frozen=True, kw_only=True)
class AssignOptions(Options):
    """Options of :func:`exportloss.max_iou_assign` and :class:`exportloss.MaxIoUAssigner` (mmdet's steps 2 and 3)."""

    pos_thr: float = 0.5
    """Matched at ``max_overlap >= pos_thr``; in (-1, 1]."""
    neg_thr: float | None = None
    """Background below ``neg_thr``, ignored in between; in (-1, 1] and ``<= pos_thr`` (a crossing pair is a
    contradiction: an error). ``None`` stores 0.4, or ``pos_thr`` when that is lower (no ignored band)."""
    min_pos_thr: float = 0.0
    """A ground truth claims its best anchors when its best overlap is ``> min_pos_thr``; in (-1, 1]."""
    allow_low_quality: bool = True
    """Run the claiming step."""
    kind: str = "iou"
    """``"iou"`` or ``"diou"``."""
    eps: float = 1e-7
    """Stabiliser of the overlap; finite and > 0."""

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, ASSIGN_KINDS)
        # Overlaps (IoU, DIoU) lie in [-1, 1]; thresholds outside (-1, 1] would make every test trivial.
        pos_thr = check_interval("pos_thr", self.pos_thr, -1.0, 1.0, low_open=True)
        neg_thr = min(DEFAULT_NEG_THR, pos_thr) if self.neg_thr is None else check_interval("neg_thr", self.neg_thr, -1.0, 1.0, low_open=True)
        if neg_thr > pos_thr:  # background below neg_thr and matched from pos_thr up would overlap
            raise ValueError(f"neg_thr must be <= pos_thr; got neg_thr={neg_thr!r} and pos_thr={pos_thr!r}")
        self._normalise(pos_thr=pos_thr, neg_thr=neg_thr,
                        min_pos_thr=check_interval("min_pos_thr", self.min_pos_thr, -1.0, 1.0, low_open=True))
        self._normalise(eps=check_eps(self.eps), allow_low_quality=bool(self.allow_low_quality))


@dataclasses.dataclass(frozen=True, kw_only=True)
class MatchOptions(Options):
    """Options of :func:`exportloss.detection.match_metrics` and :class:`exportloss.MatchMetrics`."""

    thresholds: Sequence[float] = (0.5, 0.75)
    """IoU thresholds of the recall output, each in (0, 1]; stored as a tuple of floats."""
    match_thr: float = 0.5
    """The best IoU at which a ground truth counts as matched for ``matched_loss``, in (0, 1]."""
    loss_kind: str = "ciou"
    """The IoU kind of ``matched_loss``: one of :data:`exportloss.IOU_KINDS`."""
    eps: float = 1e-7
    """Stabiliser; finite and > 0."""

    def __post_init__(self) -> None:
        check_choice("loss_kind", self.loss_kind, IOU_KINDS)
        if isinstance(self.thresholds, (str, bytes)) or not isinstance(self.thresholds, Sequence):
            raise TypeError(f"thresholds must be a sequence of IoUs in (0, 1], e.g. (0.5,); got {self.thresholds!r}")
        thresholds = tuple(self.thresholds)
        if not thresholds:
            raise ValueError("thresholds must be a non-empty sequence of IoUs in (0, 1]; got ()")
        thresholds = tuple(check_interval(f"thresholds[{i}]", t, 0.0, 1.0, low_open=True) for i, t in enumerate(thresholds))
        self._normalise(thresholds=thresholds, match_thr=check_interval("match_thr", self.match_thr, 0.0, 1.0, low_open=True),
                        eps=check_eps(self.eps))
