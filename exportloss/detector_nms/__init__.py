"""NMS for the user's own detector: ``attach`` a detector's ONNX model to exportloss's fixed-shape NMS.

:mod:`.layouts` (torch only): the detector output layouts and :class:`AttachedNMS`, the decoding + NMS
module that ``attach`` exports (usable from PyTorch too). :mod:`.join` (onnx): :func:`attach`, which
exports that module against the detector's outputs and joins the two models. :mod:`.reference`: float64
layout decoding and greedy NMS. :mod:`.verify`: ``exportloss verify`` of a joined model.
"""

from .layouts import DEFAULT_CLASSES, LAYOUTS, NMS_KINDS, AttachedNMS, LayoutDecoder, nms_options

__all__ = ["DEFAULT_CLASSES", "LAYOUTS", "NMS_KINDS", "AttachedNMS", "LayoutDecoder", "nms_options"]
