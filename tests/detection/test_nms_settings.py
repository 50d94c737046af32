"""NMS settings and outputs: classes=all|best|agnostic, outputs=default|efficientnms, det_indices, sizes past
TensorRT's TopK limit, rotated NMS with the same options, and NMSHead exported from PyTorch."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import exportloss
from exportloss import catalog
from exportloss.catalog.detection import detection_scene, rotated_scene
from exportloss.detection import NMSOptions, RotatedNMSOptions
from exportloss.export import export_model
from exportloss.reference.detection import nms_reference, rotated_nms_reference
from exportloss.trt.check import check_model

# Box 0 scores 0.9 as class 1 and 0.8 as class 2; box 1 (IoU 0.68 with box 0) scores 0.7 as class 0.
BOXES = torch.tensor([[[0.0, 0, 10, 10], [1, 1, 11, 11], [40, 40, 50, 50]]])
SCORES = torch.tensor([[[0.0, 0.9, 0.8], [0.7, 0.0, 0.0], [0.0, 0.0, 0.6]]])


def kept(dets) -> list[tuple[int, int]]:
    """(box index, class) of each detection."""
    n = int(dets[0].reshape(-1)[0])
    return list(zip(dets[4][0, :n].tolist(), dets[3][0, :n].tolist()))


def test_classes_modes_by_hand():
    assert kept(exportloss.cluster_nms(BOXES, SCORES, classes="all")) == [(0, 1), (0, 2), (1, 0), (2, 2)]
    assert kept(exportloss.cluster_nms(BOXES, SCORES, classes="best")) == [(0, 1), (1, 0), (2, 2)]
    assert kept(exportloss.cluster_nms(BOXES, SCORES, classes="agnostic")) == [(0, 1), (2, 2)]


def test_best_class_ties_take_the_lowest_class():
    dets = exportloss.cluster_nms(BOXES[:, :1], torch.tensor([[[0.2, 0.7, 0.7]]]), classes="best")
    assert kept(dets) == [(0, 1)]


def test_det_indices_gather_the_detected_boxes():
    rng = np.random.default_rng(70)
    scene = detection_scene(rng, (2, 300, 4), (2, 300, 5))
    boxes, scores = torch.from_numpy(scene["boxes"]), torch.from_numpy(scene["scores"])
    dets = exportloss.cluster_nms(boxes, scores)
    valid = dets.det_indices >= 0
    assert torch.equal(valid, dets.det_classes >= 0)
    gathered = boxes.gather(1, dets.det_indices.clamp(min=0).unsqueeze(-1).expand(-1, -1, 4))
    assert torch.equal(gathered[valid], dets.det_boxes[valid])
    scores_of = scores.gather(1, dets.det_indices.clamp(min=0).unsqueeze(-1).expand(-1, -1, 5))
    assert torch.equal(scores_of.gather(2, dets.det_classes.clamp(min=0).unsqueeze(-1)).squeeze(-1)[valid], dets.det_scores[valid])


def test_efficientnms_outputs_are_the_default_ones_renamed_and_cast():
    rng = np.random.default_rng(71)
    scene = detection_scene(rng, (2, 200, 4), (2, 200, 3))
    boxes, scores = torch.from_numpy(scene["boxes"]), torch.from_numpy(scene["scores"])
    default = exportloss.cluster_nms(boxes, scores, max_det=50)
    trt = exportloss.cluster_nms(boxes, scores, max_det=50, outputs="efficientnms")
    assert trt._fields == ("num_detections", "detection_boxes", "detection_scores", "detection_classes",
                           "detection_indices", "converged", "num_capped")
    assert trt.num_detections.shape == (2, 1) and trt.num_detections.dtype == torch.int32
    assert trt.detection_classes.dtype == torch.int32 and trt.detection_indices.dtype == torch.int32
    assert trt.num_capped.dtype == torch.int32 and trt.converged.dtype == torch.bool
    for got, want in zip(trt, default):
        assert torch.equal(got.reshape(want.shape).to(want.dtype), want)


@pytest.mark.parametrize("classes", ["best", "agnostic"])
@pytest.mark.parametrize("outputs", ["default", "efficientnms"])
def test_settings_equal_the_reference(classes, outputs):
    rng = np.random.default_rng(72)
    for _ in range(5):
        scene = detection_scene(rng, (2, 300, 4), (2, 300, 6))
        boxes, scores = torch.from_numpy(scene["boxes"]), torch.round(torch.from_numpy(scene["scores"]) * 8) / 8
        options = NMSOptions(classes=classes, outputs=outputs, kind="diou", max_det=60, candidates=250)
        got = exportloss.cluster_nms(boxes, scores, options=options)
        want = nms_reference(boxes.double(), scores.double(), options)
        for name, g, w in zip(got._fields, got, want):
            assert g.dtype == w.dtype or g.is_floating_point(), name
            torch.testing.assert_close(g.double(), w.double(), atol=0, rtol=0, msg=name)


@pytest.mark.parametrize("classes", ["all", "agnostic"])
def test_rotated_nms_takes_the_same_settings(classes):
    rng = np.random.default_rng(73)
    scene = rotated_scene(rng, (2, 60, 5), (2, 60, 4))
    boxes, scores = torch.from_numpy(scene["boxes"]), torch.from_numpy(scene["scores"])
    options = RotatedNMSOptions(classes=classes, outputs="efficientnms", criterion="probiou", max_det=30, iterations=2)
    got = exportloss.rotated_cluster_nms(boxes, scores, options=options)
    want = rotated_nms_reference(boxes.double(), scores.double(), options)
    assert got.detection_boxes.shape == (2, 30, 5)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w.double(), atol=1e-6, rtol=0)


def test_sizes_past_tensorrts_topk_limit_run_in_onnxruntime_and_check_trt_says_why_not():
    """4000 candidates and 3900 detections of 50 boxes x 100 classes: valid ONNX, equal to the reference."""
    entry = catalog.get("cluster_nms").at(sizes={"batch": 1, "boxes": 50, "classes": 100, "candidates": 4000, "max_det": 3900})
    model = export_model(entry)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    scene = detection_scene(np.random.default_rng(74), (1, 50, 4), (1, 50, 100))
    scene["scores"] = scene["scores"] + np.float32(0.05)  # every pair above score_thr
    got = session.run(entry.output_names, scene)
    want = entry.reference(entry.build(), *(torch.from_numpy(scene[k]).double() for k in ("boxes", "scores")))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.astype(np.float64), w.double().numpy())
    assert int(got[6][0]) == 1000  # pairs above score_thr beyond the 4000 candidates
    report = check_model(model)
    assert not report.compatible
    assert any(finding.op == "TopK" and "needs it below 3840" in finding.message for finding in report.findings)


def test_nms_head_exports_inside_a_detector():
    """A detector ending in NMSHead, exported with torch.onnx.export: onnxruntime equals eager PyTorch."""

    class Detector(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.nms = exportloss.NMSHead(score_thr=0.25, iou_thr=0.45, max_det=30, classes="best", outputs="efficientnms")

        def forward(self, features: torch.Tensor) -> exportloss.EfficientNMSDetections:
            centre, size = features[..., :2] * 64, features[..., 2:4] * 16 + 1
            boxes = torch.cat([centre - size / 2, centre + size / 2], dim=-1)
            return self.nms(boxes, features[..., 4:].sigmoid())

    assert exportloss.NMSHead is exportloss.detection.NMSHead
    detector = Detector().eval()
    features = torch.rand(2, 200, 4 + 5, generator=torch.Generator().manual_seed(75)) * 2 - 0.5
    names = list(exportloss.EfficientNMSDetections._fields)
    program = torch.onnx.export(detector, (features,), dynamo=True, input_names=["features"], output_names=names)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(names, {"features": features.numpy()})
    want = detector(features)
    assert int(want.num_detections.sum()) > 10
    for name, g, w in zip(names, got, want):
        assert g.dtype == w.numpy().dtype, name
        np.testing.assert_allclose(g, w.numpy(), rtol=0, atol=1e-5, err_msg=name)
