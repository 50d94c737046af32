"""Small detectors of each output layout, built and exported by the tests themselves (no downloads).

Each is a few convolutions over a ``[B, 3, 64, 64]`` image on a stride-4 grid (256 boxes): box centres
near their cells, sides of 1.5 to 5 cells (so neighbours overlap densely and suppression chains form),
and class scores rounded to sixteenths (so scores tie). Weights come from a fixed seed.
"""

from __future__ import annotations

import io
import math

import onnx
import torch
from torch import nn

IMAGE = (3, 64, 64)
STRIDE = 4
NUM_CLASSES = 3
SCORE_STEPS = 16.0


class TinyDetector(nn.Module):
    """``forward(images [B, 3, 64, 64])`` -> the layout's outputs (see the module docstring)."""

    def __init__(self, layout: str, box_format: str = "xyxy", seed: int = 0) -> None:
        super().__init__()
        self.layout, self.box_format = layout, box_format
        extra = 1 if layout in ("yolo-obj", "obb") else 0
        self.features = nn.Sequential(nn.Conv2d(3, 16, 4, stride=STRIDE), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.predict = nn.Conv2d(16, 4 + extra + NUM_CLASSES, 1)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        cells = IMAGE[1] // STRIDE
        ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
        self.register_buffer("grid", torch.stack([xs, ys]).reshape(1, 2, -1).float())

    def forward(self, images: torch.Tensor):
        raw = self.predict(self.features(images)).flatten(2)  # [B, channels, N]
        centre = (self.grid + 0.5 + torch.tanh(raw[:, 0:2])) * STRIDE
        size = (1.5 + 3.5 * torch.sigmoid(raw[:, 2:4])) * STRIDE
        scores = torch.round(torch.sigmoid(raw[:, -NUM_CLASSES:]) * SCORE_STEPS) / SCORE_STEPS
        if self.layout == "yolo":
            return torch.cat([centre, size, scores], dim=1)  # [B, 4 + C, N]
        if self.layout == "obb":
            angle = torch.tanh(raw[:, 4:5]) * (math.pi / 2)
            return torch.cat([centre, size, scores, angle], dim=1)  # [B, 4 + C + 1, N]
        if self.layout == "yolo-obj":
            objectness = torch.round(torch.sigmoid(raw[:, 4:5]) * SCORE_STEPS) / SCORE_STEPS
            return torch.cat([centre, size, objectness, scores], dim=1).transpose(1, 2)  # [B, N, 5 + C]
        if self.box_format == "xyxy":
            boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
        elif self.box_format == "xywh":
            boxes = torch.cat([centre - size / 2, size], dim=1)
        else:
            boxes = torch.cat([centre, size], dim=1)
        return boxes.transpose(1, 2), scores.transpose(1, 2)  # [B, N, 4], [B, N, C]


def export_detector(layout: str, batch: int = 2, box_format: str = "xyxy", opset: int = 18, dynamic_batch: bool = False,
                    float16: bool = False, ir_version: int | None = None) -> onnx.ModelProto:
    """The tiny detector of ``layout`` exported with ``torch.onnx.export`` (TorchScript exporter), as a user would."""
    detector = TinyDetector(layout, box_format).eval()
    names = ["boxes", "scores"] if layout == "boxes-scores" else ["output0"]
    if float16:  # float16 outputs, as a detector exported in half precision gives them
        module = _HalfOutputs(detector)
    else:
        module = detector
    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in ["images", *names]} if dynamic_batch else None
    torch.onnx.export(module, (torch.rand(batch, *IMAGE),), buffer, dynamo=False, opset_version=opset,
                      input_names=["images"], output_names=names, dynamic_axes=axes)
    model = onnx.load_from_string(buffer.getvalue())
    if ir_version is not None:
        model.ir_version = ir_version
    onnx.helper.set_model_props(model, {"author": "tests", "stride": str(STRIDE)})
    return model


class _HalfOutputs(nn.Module):
    def __init__(self, detector: TinyDetector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor):
        outputs = self.detector(images)
        return tuple(o.half() for o in outputs) if isinstance(outputs, tuple) else outputs.half()
