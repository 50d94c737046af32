"""Example (a): a small detector head and Cluster-DIoU-NMS exported as ONE ONNX graph, verified end to end.

The graph takes a feature map and returns fixed-shape detections (``num_dets [B]``,
``det_boxes [B, 100, 4]``, ``det_scores [B, 100]``, ``det_classes [B, 100]``, ``det_indices``, ``converged``,
``num_capped``): no NonMaxSuppression,
NonZero or Loop, so TensorRT builds it without plugins. It is exported with both exporters and run in
onnxruntime on fresh seeded feature maps (and an all-zero map, where every score ties), against the
eager head followed by the plain-loop greedy DIoU-NMS reference.

    .venv/bin/python export_scripts/detector_with_nms.py [-o build/examples]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnx
import torch
from torch import nn

from exportloss.catalog import Case, GraphEntry, TensorSpec
from exportloss.export import EXPORTERS, export_graph
from exportloss.detection.nms import ClusterNMS
from exportloss.reference.detection import nms_reference
from exportloss.tolerance import Tolerance
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


class DetectorWithNMS(nn.Module):
    """The head followed by Cluster-DIoU-NMS: ``forward(features) -> Detections``."""

    def __init__(self) -> None:
        super().__init__()
        self.head = TinyDetectorHead(*FEATURES[1:])
        self.nms = ClusterNMS(kind="diou", iou_thr=0.5, score_thr=0.3, max_det=100)

    def forward(self, features: torch.Tensor):
        return self.nms(*self.head(features))


def end_to_end_reference(module: DetectorWithNMS, features: torch.Tensor):
    """The eager float32 head (the network itself is not under test), then greedy DIoU-NMS in float64."""
    boxes, scores = module.head(features.float())
    return nms_reference(boxes.double(), scores.double(), module.nms.options)


ENTRY = GraphEntry(
    name="detector_with_cluster_diou_nms",
    summary="tiny conv detector head + Cluster-DIoU-NMS, one graph",
    sizes={"batch": FEATURES[0]},
    make=lambda sizes: DetectorWithNMS(),
    inputs=(TensorSpec("features", ("batch", *FEATURES[1:])),),
    outputs=(TensorSpec("num_dets", ("batch",), "int64"), TensorSpec("det_boxes", ("batch", 100, 4)),
             TensorSpec("det_scores", ("batch", 100)), TensorSpec("det_classes", ("batch", 100), "int64"),
             TensorSpec("det_indices", ("batch", 100), "int64"), TensorSpec("converged", ("batch",), "bool"),
             TensorSpec("num_capped", ("batch",), "int64")),
    reference=end_to_end_reference,
    random_inputs=lambda shapes, rng: {"features": rng.normal(0.0, 1.0, shapes["features"]).astype(np.float32)},
    edge_cases=lambda shapes, rng: [Case("all-zero-features", {"features": np.zeros(shapes["features"], np.float32)})],
    # Boxes come out of exp() in float32, where onnxruntime's and PyTorch's convolutions differ in the
    # last bits; coordinates reach ~500, so compare them at float32's resolution there.
    tolerance=Tolerance(atol=1e-4),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="build/examples", help="where the .onnx files go")
    args = parser.parse_args(argv)
    failed = False
    for exporter in EXPORTERS:
        result = export_graph(ENTRY, f"{args.output}/{exporter}", exporter=exporter)
        trt = check_model(onnx.load(str(result.path)))
        for row in verify(result.path, entry=ENTRY):
            verdict = "PASS" if row.passed else "FAIL"
            print(f"{exporter:<11} {row.backend}: {row.cases} cases, max abs err {row.max_abs:.2e}  {verdict}  "
                  f"-> {result.path}")
            for failure in row.failures or []:
                print(f"    {failure}")
            failed |= not row.passed
        print(f"{exporter:<11} TensorRT {trt.trt_version} static check: {trt.verdict}")
        for finding in trt.errors:
            print(f"    {finding}")
        failed |= not trt.compatible
    with torch.no_grad():
        dets = ENTRY.build()(torch.from_numpy(ENTRY.example_inputs()["features"]))
    print(f"example: num_dets {dets.num_dets.tolist()}, first classes {dets.det_classes[0, :8].tolist()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
