"""Detector output layouts and the trace-friendly module that turns them into detections.

A layout says how a detector writes its predictions (``N`` boxes, ``C`` classes, ``B`` images):

* ``yolo``: one output ``[B, 4+C, N]``, rows ``cx, cy, w, h`` then one score per class (YOLOv8, YOLO11).
* ``yolo-obj``: one output ``[B, N, 5+C]``, columns ``cx, cy, w, h, objectness`` then class
  probabilities; a pair's score is ``objectness · class probability`` (YOLOv5, YOLOv7, YOLOX).
* ``boxes-scores``: two outputs, boxes ``[B, N, 4]`` (``xyxy``, ``xywh`` or ``cxcywh``) and scores
  ``[B, N, C]`` or ``[B, N]`` (torchvision-style heads, most two-output exports).
* ``obb``: one output ``[B, 4+C+1, N]``, rows ``cx, cy, w, h``, the class scores, then the angle θ in
  radians (ultralytics OBB); rotated NMS.

With ``num_classes`` only the first ``C`` score rows count (a segmentation model's mask coefficients
follow them). :class:`AttachedNMS` decodes in float32 whatever the detector's dtype (float16 outputs are
cast first: box arithmetic in float32), then runs :class:`~exportloss.detection.nms.ClusterNMS` (IoU or
DIoU) or :class:`~exportloss.detection.rotated_nms.RotatedClusterNMS` on the decoded boxes.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..boxes.formats import BOX_FORMATS, convert_boxes
from ..detection.nms import ClusterNMS, Detections
from ..detection.options import NMSOptions, RotatedNMSOptions
from ..detection.rotated_nms import RotatedClusterNMS
from ..ops.checks import check_choice

LAYOUTS = ("yolo", "yolo-obj", "boxes-scores", "obb")
NMS_KINDS = ("iou", "diou", "rotated")
TWO_OUTPUTS = ("boxes-scores",)
"""Layouts whose boxes and scores are separate outputs; the others have one prediction output."""

DEFAULT_CLASSES = {"yolo": "best", "yolo-obj": "best", "obb": "best", "boxes-scores": "all"}
"""Which (box, class) pairs compete, per layout, as the detector's own post-processing does it: ultralytics
keeps each box's best class; torchvision's heads score every pair. The ``classes`` option
(``--option classes=all|best|agnostic``) overrides it."""


def nms_options(nms: str, layout: str, options: NMSOptions | RotatedNMSOptions | None = None,
                **keywords) -> NMSOptions | RotatedNMSOptions:
    """The NMS options of ``nms`` (``iou``, ``diou``, ``rotated``) on ``layout``: ``options`` or the keywords
    (any field of :class:`NMSOptions` / :class:`RotatedNMSOptions`), checked by those classes.

    ``nms`` sets ``kind`` (IoU or DIoU); ``classes`` left unset takes the layout's :data:`DEFAULT_CLASSES`.
    """
    check_choice("nms", nms, NMS_KINDS)
    check_choice("layout", layout, LAYOUTS)
    if (nms == "rotated") != (layout == "obb"):
        raise ValueError(f"nms={nms!r} does not fit layout={layout!r}: rotated boxes (layout 'obb') take nms 'rotated', "
                         "axis-aligned boxes take 'iou' or 'diou'")
    cls = RotatedNMSOptions if nms == "rotated" else NMSOptions
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(keywords) - fields)
    if unknown:
        raise ValueError(f"no NMS option {', '.join(unknown)}; the options of nms={nms!r} are {', '.join(sorted(fields))}")
    if options is None:
        if nms != "rotated":
            if keywords.get("kind", nms) != nms:
                raise ValueError(f"option kind={keywords['kind']!r} contradicts nms={nms!r}")
            keywords["kind"] = nms
        keywords.setdefault("classes", DEFAULT_CLASSES[layout])
    return cls.resolve(options, **keywords)


class LayoutDecoder(nn.Module):
    """A detector's raw outputs in ``layout`` -> ``(boxes, scores)`` in float32.

    ``forward(*outputs)``: one prediction tensor, or ``(boxes, scores)`` for ``boxes-scores``. Returns
    boxes ``[B, N, 4]`` xyxy (``[B, N, 5]`` ``cx, cy, w, h, θ`` for ``obb``) and scores ``[B, N, C]``
    (``[B, N]`` when the detector gives one score per box).
    """

    def __init__(self, layout: str, box_format: str = "xyxy", num_classes: int | None = None) -> None:
        super().__init__()
        self.layout = check_choice("layout", layout, LAYOUTS)
        self.box_format = check_choice("box_format", box_format, BOX_FORMATS)
        if layout != "boxes-scores" and box_format != "xyxy":
            raise ValueError(f"box_format applies to layout 'boxes-scores'; layout {layout!r} fixes its boxes")
        if num_classes is not None and not (isinstance(num_classes, int) and num_classes >= 1):
            raise ValueError(f"num_classes must be a positive int or None; got {num_classes!r}")
        self.num_classes = num_classes

    def forward(self, *outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = tuple(output.float() for output in outputs)  # float16 detectors: decode and compare in float32
        if self.layout == "boxes-scores":
            boxes, scores = outputs
            if self.num_classes is not None and scores.dim() == 3:
                scores = scores[..., : self.num_classes]
            return convert_boxes(boxes, self.box_format, "xyxy"), scores
        (prediction,) = outputs
        if self.layout == "yolo-obj":  # [B, N, 5 + C]
            classes = prediction.shape[2] - 5 if self.num_classes is None else self.num_classes
            scores = prediction[..., 4:5] * prediction[..., 5: 5 + classes]
            return convert_boxes(prediction[..., :4], "cxcywh", "xyxy"), scores
        rows = prediction.transpose(1, 2)  # [B, N, channels]
        if self.layout == "yolo":  # [B, 4 + C, N]
            classes = rows.shape[2] - 4 if self.num_classes is None else self.num_classes
            return convert_boxes(rows[..., :4], "cxcywh", "xyxy"), rows[..., 4: 4 + classes]
        classes = rows.shape[2] - 5 if self.num_classes is None else self.num_classes  # obb: [B, 4 + C + 1, N]
        boxes = torch.cat([rows[..., :4], rows[..., 4 + classes: 5 + classes]], dim=2)
        return boxes, rows[..., 4: 4 + classes]

    def extra_repr(self) -> str:
        return f"layout={self.layout!r}, box_format={self.box_format!r}, num_classes={self.num_classes}"


class AttachedNMS(nn.Module):
    """Layout decoding then fixed-shape NMS: ``forward(*detector_outputs) -> Detections`` (the graph ``attach`` appends).

    ``AttachedNMS("yolo", "iou", iou_thr=0.7, score_thr=0.25)``; ``options`` or keywords as :func:`nms_options`.
    """

    def __init__(self, layout: str, nms: str = "iou", box_format: str = "xyxy", num_classes: int | None = None,
                 options: NMSOptions | RotatedNMSOptions | None = None, **keywords) -> None:
        super().__init__()
        self.decode = LayoutDecoder(layout, box_format, num_classes)
        resolved = nms_options(nms, layout, options, **keywords)
        self.nms = RotatedClusterNMS(resolved) if nms == "rotated" else ClusterNMS(resolved)

    @property
    def options(self) -> NMSOptions | RotatedNMSOptions:
        return self.nms.options

    def forward(self, *outputs: torch.Tensor) -> Detections:
        return self.nms(*self.decode(*outputs))
