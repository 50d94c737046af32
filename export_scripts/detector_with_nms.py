"""Example (a): a small detector head exported as usual, then Cluster-DIoU-NMS attached with ``exportloss.attach``.

The head is exported alone with ``torch.onnx.export`` (both exporters), as any detector is; ``attach``
appends the NMS for its two outputs (``boxes [B, N, 4]`` xyxy, ``scores [B, N, C]``: layout
``boxes-scores``) and writes one file that takes the feature map and returns fixed-shape detections
(``num_dets [B]``, ``det_boxes [B, 100, 4]``, ``det_scores [B, 100]``, ``det_classes [B, 100]``,
``det_indices [B, 100]``, ``converged [B]``, ``num_capped [B]``): no
NonMaxSuppression, NonZero or Loop, so TensorRT builds it without plugins. ``verify`` then runs the joined
file in onnxruntime on seeded feature maps against greedy DIoU-NMS in float64 applied to the head's own
outputs of the same run, and the file is checked against TensorRT's parser tables.

    .venv/bin/python export_scripts/detector_with_nms.py [-o build/examples]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import onnx
import torch
from torch import nn

import exportloss
from exportloss.export import EXPORTERS
from exportloss.trt import check_model
from exportloss.verify import verify

FEATURES = (2, 16, 20, 20)
"""Batch, channels, height, width of the feature map; stride 16 makes it a 320-pixel image."""
STRIDE = 16
ANCHOR_SIZES = (24.0, 48.0, 96.0)
NUM_CLASSES = 4


def grid_anchors(height: int, width: int) -> torch.Tensor:
    """``[H·W·A, 4]`` xyxy anchors: square anchors of each size centred on every cell, cell-major."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    centres = (torch.stack([xs, ys], dim=-1).reshape(-1, 1, 2).float() + 0.5) * STRIDE
    half = torch.tensor(ANCHOR_SIZES).reshape(1, -1, 1) / 2
    return torch.cat([centres - half, centres + half], dim=-1).reshape(-1, 4)


class TinyDetectorHead(nn.Module):
    """Conv head over a stride-16 feature map: per anchor, 4 box deltas (decoded as in Faster R-CNN,
    ``dw``/``dh`` clamped at 4) and sigmoid class scores. ``forward(features) -> (boxes [B, N, 4], scores [B, N, C])``."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.num_anchors = len(ANCHOR_SIZES)
        self.hidden = nn.Conv2d(channels, channels, 3, padding=1)
        self.predict = nn.Conv2d(channels, self.num_anchors * (4 + NUM_CLASSES), 1)
        self.register_buffer("anchors", grid_anchors(height, width))
        generator = torch.Generator().manual_seed(6)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
            # Smaller box deltas keep the decoded boxes near their anchors, as a trained head's are.
            delta_rows = torch.arange(self.predict.out_channels) % (4 + NUM_CLASSES) < 4
            self.predict.weight[delta_rows] *= 0.2

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = features.shape[0]
        out = self.predict(torch.relu(self.hidden(features)))  # [B, A·(4+C), H, W]
        out = out.permute(0, 2, 3, 1).reshape(batch, -1, 4 + NUM_CLASSES)  # cell-major, like the anchors
        anchor_wh = self.anchors[:, 2:] - self.anchors[:, :2]
        centre = (self.anchors[:, :2] + self.anchors[:, 2:]) * 0.5 + out[..., :2] * anchor_wh
        half = anchor_wh * torch.exp(out[..., 2:4].clamp(max=4.0)) * 0.5
        return torch.cat([centre - half, centre + half], dim=-1), torch.sigmoid(out[..., 4:])


NMS_OPTIONS = {"iou_thr": 0.5, "score_thr": 0.3, "max_det": 100}


def export_head(exporter: str) -> onnx.ModelProto:
    """The head alone, as a user exports a detector: two outputs, no post-processing."""
    head = TinyDetectorHead(*FEATURES[1:]).eval()
    example = (torch.randn(FEATURES),)
    names = {"input_names": ["features"], "output_names": ["boxes", "scores"]}
    if exporter == "dynamo":
        return torch.onnx.export(head, example, dynamo=True, external_data=False, verbose=False, **names).model_proto
    buffer = io.BytesIO()
    torch.onnx.export(head, example, buffer, dynamo=False, opset_version=17, **names)
    return onnx.load_from_string(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="build/examples", help="where the .onnx files go")
    args = parser.parse_args(argv)
    failed = False
    for exporter in EXPORTERS:
        out = Path(args.output) / exporter
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        joined = exportloss.attach(export_head(exporter), layout="boxes-scores", nms="diou", **NMS_OPTIONS)
        path = out / "detector_with_cluster_diou_nms.onnx"
        onnx.save(joined, str(path))
        print(f"{exporter:<11} attached in {time.perf_counter() - start:.1f} s -> {path}")
        for row in verify(path):
            verdict = "PASS" if row.passed else "FAIL"
            print(f"{exporter:<11} {row.backend}: {row.cases} cases, max abs err {row.max_abs:.2e}  {verdict}")
            for line in [*row.notes, *row.failures]:
                print(f"    {line}")
            failed |= not row.passed
        trt = check_model(joined)
        print(f"{exporter:<11} TensorRT {trt.trt_version} static check: {trt.verdict}")
        for finding in trt.errors:
            print(f"    {finding}")
        failed |= not trt.compatible
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
