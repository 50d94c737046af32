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

import numpy as np

from ..boxes.iou import IOU_KINDS
from ..boxes.rotated import ROTATED_KINDS
from ..ops.checks import check_choice, check_eps, check_interval, check_number
from ..ops.options import Options

NMS_KINDS = ("iou", "diou")
NMS_CLASSES = ("all", "best", "agnostic")
"""Which (box, class) pairs enter NMS: every pair; each box's best class (ultralytics); each box's best class with
no class test (class-agnostic NMS)."""
NMS_OUTPUTS = ("default", "efficientnms")
"""Output conventions: exportloss's (``num_dets [B]`` int64, ...) and TensorRT EfficientNMS's (``num_detections [B, 1]``
int32, ...)."""
DEFAULT_NEG_THR = 0.4
"""mmdet's usual ``neg_iou_thr``: :class:`AssignOptions`' ``neg_thr`` when none is given (capped at ``pos_thr``)."""
ASSIGN_KINDS = ("iou", "diou")
TOPK_LIMIT = 3840
"""TensorRT's TopK needs a constant ``K < 3840``: larger ``candidates`` or ``max_det`` give graphs that onnxruntime
runs and ``exportloss check-trt`` refuses, naming the TopK."""
DEFAULT_CANDIDATES = 1000
AUTO_ITERATIONS = 16
"""Cluster-NMS iterations of ``iterations="auto"`` (at most the candidate count, where they are exact by
construction). Measured with ``tools/measure_cluster_iterations.py`` on detector-like scenes of 1000 boxes: the
slowest needed 10 iterations to reach greedy NMS's full keep set (class-agnostic DIoU); 16 leaves margin. Whatever
the count, the graphs' ``converged`` output says, per image, whether the detections are greedy NMS's (see
:mod:`exportloss.detection.nms`)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class _SuppressionOptions(Options):
    """What every Cluster-NMS shares: thresholds, candidates, iterations, classes, outputs, eps."""

    iou_thr: float = 0.5
    """A candidate is suppressed when its overlap with a kept one is ``> iou_thr``; in [-1, 1]."""
    score_thr: float = 0.05
    """Only pairs with ``score > score_thr`` can be kept; finite (scores may be logits)."""
    max_det: int = 100
    """Detections per image in the outputs, >= 1 (TensorRT needs < 3840, see :data:`TOPK_LIMIT`)."""
    iterations: int | str | None = "auto"
    """Cluster-NMS iterations: ``1`` is Fast NMS, ``>= candidates`` exactly greedy NMS by construction; ``"auto"``
    is :data:`AUTO_ITERATIONS` (at most the candidate count). ``None`` is read as ``"auto"``."""
    candidates: int | None = None
    """How many top-scoring pairs enter NMS, >= 1 (TensorRT needs < 3840); ``None``: ``min(pairs, 1000)``."""
    classes: str = "all"
    """Which pairs compete: ``"all"`` (every (box, class) pair), ``"best"`` (each box's best class, as
    ultralytics), ``"agnostic"`` (each box's best class, and classes suppress each other)."""
    outputs: str = "default"
    """Output convention: ``"default"`` (:class:`~exportloss.detection.nms.Detections`) or ``"efficientnms"``
    (:class:`~exportloss.detection.nms.EfficientNMSDetections`, TensorRT EfficientNMS's names and dtypes)."""
    eps: float = 1e-7
    """Stabiliser of the overlap; finite and > 0."""

    def __post_init__(self) -> None:
        iou_thr = check_interval("iou_thr", self.iou_thr, -1.0, 1.0)  # IoU lies in [0, 1], DIoU-NMS's criterion in [-1, 1]
        if not (isinstance(self.score_thr, (int, float)) and math.isfinite(self.score_thr)):  # scores may be logits: any real
            raise ValueError(f"score_thr must be a finite number; got {self.score_thr!r}")
        eps = check_eps(self.eps)
        if not (_is_int(self.max_det) and self.max_det >= 1):
            raise ValueError(f"max_det must be a positive int; got {self.max_det!r}")
        if self.candidates is not None and not (_is_int(self.candidates) and self.candidates >= 1):
            raise ValueError(f"candidates must be a positive int or None; got {self.candidates!r}")
        iterations = "auto" if self.iterations is None else self.iterations
        if iterations != "auto" and not (_is_int(iterations) and iterations >= 1):
            raise ValueError(f"iterations must be a positive int or 'auto'; got {self.iterations!r}")
        check_choice("classes", self.classes, NMS_CLASSES)
        check_choice("outputs", self.outputs, NMS_OUTPUTS)
        self._normalise(iou_thr=iou_thr, score_thr=float(self.score_thr), eps=eps, iterations=iterations)

    def candidate_count(self, num_pairs: int) -> int:
        """How many of ``num_pairs`` competing pairs enter NMS."""
        return min(self.candidates or DEFAULT_CANDIDATES, num_pairs)

    def iteration_count(self, num_candidates: int) -> int:
        """The Cluster-NMS iterations run on ``num_candidates`` candidates."""
        return min(AUTO_ITERATIONS, num_candidates) if self.iterations == "auto" else self.iterations


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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


COCO_IOU_THRESHOLDS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
"""pycocotools' ``iouThrs``: the float64 values of ``np.linspace(.5, .95, 10)`` (0.6 is not 0.5 + 0.1 in
float64, so the thresholds are these exact values, never recomputed by a step). A match needs ``IoU >= t``."""
COCO_REC_THRESHOLDS = tuple(float(r) for r in np.linspace(0.0, 1.0, 101))
"""pycocotools' ``recThrs``: the 101 recall points of the precision read-out."""
COCO_AREA_RANGES = ((0.0, 1e10), (0.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e10))
"""pycocotools' ``areaRng`` (all, small, medium, large), both bounds inclusive: an area of exactly 32² is small
and medium. Ground truths are ranged by their annotation ``area``, unmatched detections by ``w·h``."""
COCO_AREA_NAMES = ("all", "small", "medium", "large")
COCO_MAX_DETS = (1, 10, 100)
"""pycocotools' ``maxDets``: detections counted per (image, category), by score rank."""
COCO_BOX_FORMATS = ("xywh", "xyxy")
DEFAULT_COCO_ROUNDS = 8
"""Settling rounds of :func:`exportloss.coco_match` when none are given. On the tests' synthetic COCO sets (three
seeds of 500 images) every whole image of up to 100 detections and every (image, category) row settled within
3 rounds (2 typical); ``rounds = max_dets`` is exact by construction. The ``unsettled`` output says whether a
result is complete."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CocoMatchOptions(Options):
    """Options of :func:`exportloss.coco_match` and :class:`exportloss.CocoMatch` (pycocotools' ``evaluateImg``)."""

    box_format: str = "xywh"
    """``"xywh"`` (COCO files, pycocotools' exact operation order) or ``"xyxy"`` (right edge given directly)."""
    max_dets: int = 100
    """Detections per (image, category) that enter matching, by score rank (pycocotools' ``maxDets[-1]``), >= 1."""
    rounds: int | None = None
    """Settling rounds, >= 1; ``None`` stores :data:`DEFAULT_COCO_ROUNDS`; ``rounds >= max_dets`` is always exact."""

    def __post_init__(self) -> None:
        check_choice("box_format", self.box_format, COCO_BOX_FORMATS)
        for name in ("max_dets", "rounds"):
            value = getattr(self, name)
            if (value is not None or name == "max_dets") and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        self._normalise(rounds=DEFAULT_COCO_ROUNDS if self.rounds is None else self.rounds)
