"""``exportloss attach`` on small detectors of each layout, built here; ``exportloss verify`` and ``check-trt`` on the joined files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import exportloss
from exportloss.cli import main
from exportloss.detector_nms.join import METADATA_ATTACHED, attached_stamp
from exportloss.detector_nms.reference import decode, nms_detections
from exportloss.detector_nms.verify import verify_attached
from exportloss.verify import verify

from tiny_detectors import IMAGE, export_detector

CASES = {  # layout -> (nms, attach keywords); rotated IoU costs ~100 bytes per candidate pair: few candidates
    "yolo": ("iou", {"score_thr": 0.25}),
    "yolo-obj": ("diou", {"score_thr": 0.1, "iou_thr": 0.45}),
    "boxes-scores": ("iou", {"score_thr": 0.25, "box_format": "xywh"}),
    "obb": ("rotated", {"score_thr": 0.5, "candidates": 128}),
}


@pytest.fixture(scope="module")
def attached(tmp_path_factory):
    """``attached(layout)`` -> (detector path, joined path), attached once per layout through the command line."""
    cache = {}

    def get(layout: str):
        if layout not in cache:
            folder = tmp_path_factory.mktemp(layout)
            nms, keywords = CASES[layout]
            box_format = keywords.get("box_format", "xyxy")
            detector = folder / "detector.onnx"
            onnx.save(export_detector(layout, box_format=box_format), str(detector))
            options = [a for key, value in keywords.items() if key != "box_format" for a in ("--option", f"{key}={value}")]
            out = folder / "joined.onnx"
            argv = ["attach", str(detector), "-o", str(out), "--layout", layout, "--nms", nms, *options]
            assert main([*argv, "--box-format", box_format] if layout == "boxes-scores" else argv) == 0
            cache[layout] = detector, out
        return cache[layout]

    return get


@pytest.mark.parametrize("layout", list(CASES))
def test_attach_then_verify_each_layout(attached, layout):
    """Issue 20's done-when, in small: on seeded images with dense overlaps and score ties the joined file equals
    the reference output by output, and every image whose kept (box, class) set differs from greedy NMS over all
    pairs is flagged by the graph (verify fails otherwise). 200 images per layout measured by hand: README."""
    _, joined = attached(layout)
    images = 6 if layout == "obb" else 32  # the rotated reference is slow
    (row,) = verify_attached(joined, images=images)
    assert row.passed, row.failures
    assert row.cases > 0 and row.provider == "CPUExecutionProvider"
    notes = [note for note in row.notes if "kept sets equal greedy NMS over the top" in note]
    assert len(notes) == 2, row.notes  # both onnxruntime optimisation levels
    assert all("flagged by the graph:" in note for note in notes)


def test_verify_command_on_a_joined_file(attached, capsys):
    _, joined = attached("yolo")
    assert main(["verify", str(joined), "--backend", "ort"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "longest suppression chain" in out and "1 passed, 0 failed" in out
    assert main(["verify", str(joined), "--backend", "ort", "--against", "ort"]) == 2
    assert "--against does not apply to a model written by `exportloss attach`" in capsys.readouterr().err


@pytest.mark.parametrize("layout", list(CASES))
def test_joined_file_passes_check_trt_and_check_ort_cuda(attached, layout, capsys):
    _, joined = attached(layout)
    assert main(["check-trt", str(joined)]) == 0, capsys.readouterr().out
    assert main(["check-ort-cuda", str(joined)]) == 0, capsys.readouterr().out
    assert "0 with CPU fallback nodes" in capsys.readouterr().out


@pytest.mark.parametrize("layout", ["yolo", "boxes-scores"])
def test_joined_file_keeps_interface_metadata_and_stamps(attached, layout):
    detector_path, joined_path = attached(layout)
    detector, joined = onnx.load(str(detector_path)), onnx.load(str(joined_path))
    assert [i.name for i in joined.graph.input] == [i.name for i in detector.graph.input]
    assert [o.name for o in joined.graph.output] == ["num_dets", "det_boxes", "det_scores", "det_classes", "det_indices",
                                                     "converged", "num_capped"]
    props = {p.key: p.value for p in joined.metadata_props}
    assert props["author"] == "tests" and props["stride"] == "4"  # the detector's own metadata
    assert "exportloss.graph" not in props  # not a catalog graph: verify must not read it as one
    stamp = attached_stamp(joined)
    nms, keywords = CASES[layout]
    assert (stamp.layout, stamp.nms, stamp.batch) == (layout, nms, 2)
    assert stamp.options["score_thr"] == keywords["score_thr"] and stamp.options["kind"] == nms
    assert stamp.detector_outputs == ([o.name for o in detector.graph.output])
    assert stamp.detector_sha256 == hashlib.sha256(detector_path.read_bytes()).hexdigest()
    assert json.loads(props[METADATA_ATTACHED])["layout"] == layout


def test_joined_outputs_equal_detector_then_reference(attached):
    """Independent of verify: run the detector file and the joined file on one image batch, decode in float64."""
    detector_path, joined_path = attached("yolo")
    images = np.random.default_rng(5).uniform(0, 1, (2, *IMAGE)).astype(np.float32)
    raw = ort.InferenceSession(str(detector_path)).run(None, {"images": images})
    got = ort.InferenceSession(str(joined_path)).run(None, {"images": images})
    stamp = attached_stamp(onnx.load(str(joined_path)))
    boxes, scores = decode("yolo", raw)
    want = nms_detections(boxes, scores, stamp.nms_options(), rotated=False)
    for exact in (0, 3, 4, 5, 6):  # num_dets, det_classes, det_indices, converged, num_capped
        np.testing.assert_array_equal(got[exact], want[exact])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(got[2], want[2])


@pytest.mark.parametrize("variant", [
    {"float16": True},
    {"opset": 17, "ir_version": 8, "float16": True, "dynamic_batch": True},
])
def test_ir8_opset17_float16_and_dynamic_batch_detectors(tmp_path, variant):
    detector = export_detector("yolo", **variant)
    batch = 2 if variant.get("dynamic_batch") else None
    joined = exportloss.attach(detector, layout="yolo", score_thr=0.25, batch=batch)
    assert joined.ir_version == detector.ir_version
    assert {o.domain: o.version for o in joined.opset_import}[""] == variant.get("opset", 18)
    if variant.get("float16"):
        assert any(node.op_type == "Cast" for node in joined.graph.node if node.name.startswith("exportloss_nms/"))
    onnx.save(joined, str(tmp_path / "joined.onnx"))
    (row,) = verify(tmp_path / "joined.onnx")
    assert row.passed, row.failures


def test_more_candidates_than_cap_is_reported_and_top_k_exact(tmp_path):
    joined = exportloss.attach(export_detector("yolo"), layout="yolo", score_thr=0.25, candidates=64)
    onnx.save(joined, str(tmp_path / "joined.onnx"))
    (row,) = verify(tmp_path / "joined.onnx")
    assert row.passed, row.failures  # the graph equals greedy NMS over its own top 64 candidates
    note = next(note for note in row.notes if note.startswith("ORT_ENABLE_ALL"))
    assert "top 64 candidates on 16/16 images" in note
    assert "16 image(s) had more than 64 pairs above score_thr" in note
    assert "16 with pairs capped" in note  # num_capped > 0: every image whose result may differ is flagged
    images = np.random.default_rng(1).uniform(0, 1, (2, *IMAGE)).astype(np.float32)
    num_dets, *_, converged, num_capped = ort.InferenceSession(str(tmp_path / "joined.onnx")).run(None, {"images": images})
    assert (num_capped > 0).all() and (num_dets < 100).all()  # flagged: greedy over all pairs may keep more


@pytest.mark.parametrize("layout, default", [("yolo", "best"), ("yolo-obj", "best"), ("obb", "best"), ("boxes-scores", "all")])
def test_classes_default_per_layout_and_option_overrides(layout, default):
    """ultralytics layouts keep each box's best class, torchvision-style heads every (box, class) pair."""
    nms = "rotated" if layout == "obb" else "iou"
    assert exportloss.detector_nms.AttachedNMS(layout, nms).options.classes == default
    assert exportloss.detector_nms.AttachedNMS(layout, nms, classes="agnostic").options.classes == "agnostic"


def test_classes_option_on_the_command_line_is_stamped_and_verified(attached, tmp_path):
    detector, joined = attached("yolo")
    assert attached_stamp(onnx.load(str(joined))).options["classes"] == "best"
    out = tmp_path / "all.onnx"
    assert main(["attach", str(detector), "-o", str(out), "--layout", "yolo", "--option", "classes=all",
                 "--option", "score_thr=0.25"]) == 0
    assert attached_stamp(onnx.load(str(out))).options["classes"] == "all"
    (row,) = verify(out)
    assert row.passed, row.failures


@pytest.mark.parametrize("layout", ["yolo", "boxes-scores"])
def test_attach_with_efficientnms_outputs(tmp_path, layout, capsys):
    """``--option outputs=efficientnms``: TensorRT EfficientNMS's names and dtypes on the joined file; verify and check-trt pass."""
    detector = tmp_path / "detector.onnx"
    onnx.save(export_detector(layout), str(detector))
    out = tmp_path / "joined.onnx"
    assert main(["attach", str(detector), "-o", str(out), "--layout", layout, "--option", "outputs=efficientnms",
                 "--option", "score_thr=0.25"]) == 0
    joined = onnx.load(str(out))
    types = {o.name: (onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type).name,
                      [d.dim_value for d in o.type.tensor_type.shape.dim]) for o in joined.graph.output}
    assert types == {"num_detections": ("int32", [2, 1]), "detection_boxes": ("float32", [2, 100, 4]),
                     "detection_scores": ("float32", [2, 100]), "detection_classes": ("int32", [2, 100]),
                     "detection_indices": ("int32", [2, 100]), "converged": ("bool", [2]), "num_capped": ("int32", [2])}
    (row,) = verify(out)
    assert row.passed, row.failures
    assert main(["check-trt", str(out)]) == 0, capsys.readouterr().out


class ChainDetector(torch.nn.Module):
    """``forward(images) -> (boxes [B, 100, 4], scores [B, 100])``: a 100-box chain in which each box overlaps
    the next at IoU 0.6 and the one after at 0.33, scores falling along it (greedy NMS keeps every other box);
    the image only shifts the whole chain."""

    def __init__(self) -> None:
        super().__init__()
        left = torch.arange(100, dtype=torch.float32) * 2.5
        self.register_buffer("chain", torch.stack([left, torch.zeros(100), left + 10.0, torch.full((100,), 10.0)], dim=1))
        self.register_buffer("scores", 0.9 - torch.arange(100, dtype=torch.float32) * 0.005)

    def forward(self, images: torch.Tensor):
        shift = images.mean(dim=(1, 2, 3)).reshape(-1, 1, 1) * 4.0
        return self.chain + shift, self.scores.expand(images.shape[0], 100) + 0.0 * shift.reshape(-1, 1)


@pytest.mark.parametrize("iterations, flagged", [(128, 0), ("auto", 16)])
def test_suppression_chain_is_measured_and_too_few_iterations_flagged(tmp_path, iterations, flagged):
    """16 iterations ("auto") cannot resolve a 99-long chain: the graph keeps too many boxes and says so
    (``converged`` false on every image, as the reference's loops compute it); verify checks the flag."""
    path = tmp_path / "chain.onnx"
    torch.onnx.export(ChainDetector(), (torch.rand(1, *IMAGE),), str(path), dynamo=False, opset_version=18,
                      input_names=["images"], output_names=["boxes", "scores"])
    joined = exportloss.attach(str(path), layout="boxes-scores", score_thr=0.05, iterations=iterations)
    onnx.save(joined, str(tmp_path / "joined.onnx"))
    (row,) = verify(tmp_path / "joined.onnx")
    assert row.passed, row.failures
    notes = [note for note in row.notes if "chain" in note]
    assert notes and all("longest suppression chain 99" in note for note in notes), row.notes
    assert all(f"flagged by the graph: {flagged} not converged, 0 with pairs capped" in note for note in notes), notes
    assert all(f"over all pairs on {16 - flagged}/16" in note for note in notes), notes
    images = np.random.default_rng(0).uniform(0, 1, (1, *IMAGE)).astype(np.float32)
    num_dets, *_, converged, num_capped = ort.InferenceSession(str(tmp_path / "joined.onnx")).run(None, {"images": images})
    assert (int(num_dets[0]), bool(converged[0]), int(num_capped[0])) == ((50, True, 0) if not flagged else (num_dets[0], False, 0))
    assert flagged == 0 or num_dets[0] > 50  # greedy keeps every other box; too few iterations keep more


@pytest.mark.parametrize("kwargs, message", [
    ({"layout": "yolo-obj"}, r"layout yolo-obj \(one output \[B, N, 5\+C\]\): no output fit the prediction; name it with --boxes"),
    ({"layout": "yolo", "boxes": "nope"}, r"--boxes nope: the detector has no such output; its outputs are output0 float32\[2x7x256\]"),
    ({"layout": "yolo", "batch": 4}, r"--batch 4: the detector's output output0 float32\[2x7x256\] has batch 2"),
    ({"layout": "yolo", "nms": "rotated"}, r"nms='rotated' does not fit layout='yolo'"),
    ({"layout": "yolo", "iou_thr": 3.0}, r"iou_thr must be finite and lie in \[-1, 1\]; got 3.0"),
    ({"layout": "yolo", "gamma": 2.0}, r"no NMS option gamma; the options of nms='iou' are"),
    ({"layout": "yolo", "box_format": "cxcywh"}, r"box_format applies to layout 'boxes-scores'"),
    ({"layout": "yolo", "scores": "output0"}, r"--scores applies to layout boxes-scores"),
])
def test_bad_attach_arguments_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        exportloss.attach(export_detector("yolo"), **kwargs)
    assert "\n" not in str(err.value)


def test_dynamic_batch_needs_batch_and_ambiguous_outputs_are_named(capsys, tmp_path):
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(export_detector("yolo", dynamic_batch=True), str(dynamic))
    assert main(["attach", str(dynamic), "-o", str(tmp_path / "out.onnx"), "--layout", "yolo"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("exportloss attach: error: the detector's batch is dynamic (input images float32[?x3x64x64]); "
                           "give --batch B (the fixed-shape NMS needs one)")
    two = export_detector("boxes-scores")  # scores [2, 256, 3] and a second [2, 256, 4] output: both fit "boxes"
    extra = onnx.helper.make_tensor_value_info("boxes_copy", onnx.TensorProto.FLOAT, [2, 256, 4])
    two.graph.node.append(onnx.helper.make_node("Identity", ["boxes"], ["boxes_copy"]))
    two.graph.output.append(extra)
    with pytest.raises(ValueError, match=r"outputs boxes float32\[2x256x4\], boxes_copy float32\[2x256x4\] fit the boxes; name it with --boxes"):
        exportloss.attach(two, layout="boxes-scores")


def test_attaching_twice_and_bad_files_are_one_line(attached, capsys, tmp_path):
    _, joined = attached("yolo")
    assert main(["attach", str(joined), "-o", str(tmp_path / "again.onnx"), "--layout", "yolo"]) == 2
    assert "already has exportloss NMS attached" in capsys.readouterr().err
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    assert main(["attach", str(garbage), "-o", str(tmp_path / "x.onnx"), "--layout", "yolo"]) == 2
    assert f"{garbage}: not an ONNX model" in capsys.readouterr().err
    assert main(["attach", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.onnx"), "--layout", "yolo"]) == 2
    assert "does not exist" in capsys.readouterr().err
