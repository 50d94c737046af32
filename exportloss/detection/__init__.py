"""Detection post-processing: COCO matching, max-IoU assignment, Cluster/Fast NMS (axis-aligned and rotated), match metrics.

Their options are validated frozen dataclasses (:mod:`exportloss.detection.options`).
Float64 references: :mod:`exportloss.reference.detection`; catalog entries: :mod:`exportloss.catalog.detection`.
"""

from .assign import Assignment, MaxIoUAssigner, max_iou_assign
from .coco import CocoMatch, CocoMatches, coco_match
from .match_metrics import MatchMetrics, Metrics, match_metrics
from .nms import ClusterNMS, Detections, EfficientNMSDetections, FastNMS, NMSHead, cluster_nms, fast_nms
from .options import NMS_KINDS, AssignOptions, CocoMatchOptions, MatchOptions, NMSOptions, RotatedNMSOptions
from .rotated_nms import RotatedClusterNMS, rotated_cluster_nms

__all__ = [
    "Assignment", "MaxIoUAssigner", "max_iou_assign", "MatchMetrics", "Metrics", "match_metrics",
    "NMS_KINDS", "ClusterNMS", "Detections", "EfficientNMSDetections", "FastNMS", "NMSHead", "cluster_nms", "fast_nms", "RotatedClusterNMS", "rotated_cluster_nms",
    "CocoMatch", "CocoMatches", "coco_match", "CocoMatchOptions",
    "AssignOptions", "MatchOptions", "NMSOptions", "RotatedNMSOptions",
]
