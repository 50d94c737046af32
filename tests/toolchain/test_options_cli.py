"""``--option KEY=VALUE`` on every catalog graph, ``exportloss list NAME`` and ``entry.at(options=...)``."""

from __future__ import annotations

import json

import onnx
import pytest

from exportloss import catalog
from exportloss.catalog.graph_options import parse_value
from exportloss.cli import main
from exportloss.model_files import METADATA_OPTIONS
from exportloss.verify import verify


@pytest.mark.parametrize("name", catalog.names())
def test_every_graph_has_options_and_takes_its_own_values(name):
    """Each graph lists options, and setting every option to the value it has rebuilds an equal module."""
    entry = catalog.get(name)
    specs = entry.option_specs()
    assert specs, f"{name} has no options"
    values = {spec.name: spec.value for spec in specs.values()}
    again = entry.at(options=values)
    assert {spec.name: spec.value for spec in again.option_specs().values()} == values
    module, rebuilt = entry.build(), again.build()
    for (key, a), (_, b) in zip(module.state_dict().items(), rebuilt.state_dict().items()):
        assert a.equal(b), f"{name}: {key} changed"


def test_options_reach_module_and_reference():
    entry = catalog.get("cluster_nms").at(options={"iou_thr": 0.7, "kind": "diou", "max_det": 20})
    module = entry.build()
    assert (module.options.iou_thr, module.options.kind, module.options.max_det) == (0.7, "diou", 20)
    case = entry.verification_cases(n_random=1)[0]
    from exportloss.verify import reference_outputs

    num_dets, det_boxes, *_ = reference_outputs(entry, module, case.inputs)
    assert det_boxes.shape[1] == 20  # the reference reads the module's options


@pytest.mark.parametrize("annotation, text, value", [
    ("float", "0.6", 0.6), ("int", "300", 300), ("int | None", "none", None), ("int | None", "12", 12),
    ("bool", "false", False), ("bool", "Yes", True), ("str", "diou", "diou"), ("Sequence[float]", "0.5", [0.5]),
    ("Sequence[float]", "0.5,0.75", [0.5, 0.75]), ("float | Sequence[float]", "0.25", 0.25),
    ("float | Sequence[float]", "0.1,0.9", [0.1, 0.9]),
])
def test_values_parse_by_type(annotation, text, value):
    assert parse_value("x", text, annotation) == value


@pytest.mark.parametrize("args, message", [
    (["--option", "iou_thr=2"], "exportloss export: error: --option iou_thr=2.0: iou_thr must be finite and lie in [-1, 1]; got 2.0"),
    (["--option", "max_det=many"], "exportloss export: error: --option max_det: expected int; got 'many'"),
    (["--option", "kind=giou"], "exportloss export: error: --option kind=giou: kind must be one of 'iou', 'diou'; got 'giou'"),
    (["--option", "iou_thr"], "exportloss export: error: --option expects KEY=VALUE, like iou_thr=0.6; got 'iou_thr'"),
    (["--option", "iou_thr=0.5", "--option", "iou_thr=0.6"],
     "exportloss export: error: --option iou_thr is given twice (iou_thr=0.5 and iou_thr=0.6)"),
    (["--option", "gamma=2"], "exportloss export: error: graph 'cluster_nms' has no option gamma; its options are "
                              "iou_thr, score_thr, max_det, iterations, candidates, eps, kind, diou_beta"),
])
def test_bad_options_are_one_line_exit_2(tmp_path, capsys, args, message):
    assert main(["export", "cluster_nms", "-o", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.strip().startswith(message.split("; its options are")[0]), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cluster_nms.onnx").exists()


def test_options_need_one_graph(tmp_path, capsys):
    assert main(["export", "iou_loss", "giou_loss", "-o", str(tmp_path), "--option", "reduction=sum"]) == 2
    assert "apply to one graph at a time" in capsys.readouterr().err


@pytest.mark.parametrize("name, options", [
    ("cluster_nms", ["iou_thr=0.65", "score_thr=0.25", "max_det=30", "kind=diou"]),
    ("focal_loss", ["reduction=none", "gamma=1.5"]),
    ("tversky_loss", ["alpha=0.6", "beta=0.4"]),
])
def test_options_are_stamped_and_verify_rebuilds_them(tmp_path, name, options):
    sizes = ["--size", "boxes=200", "--size", "classes=5"] if name == "cluster_nms" else []
    assert main(["export", name, "-o", str(tmp_path), *sizes, *[a for o in options for a in ("--option", o)]]) == 0
    path = tmp_path / f"{name}.onnx"
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    stamped = json.loads(props[METADATA_OPTIONS])
    assert set(stamped) == {o.split("=")[0] for o in options}
    rows = verify(path)
    assert rows and all(row.passed for row in rows), [row.failures for row in rows]


@pytest.mark.parametrize("name", ["cluster_nms", "rotated_cluster_nms"])
def test_efficientnms_outputs_option_changes_the_outputs_and_verifies(tmp_path, name):
    """``--option outputs=efficientnms``: TensorRT EfficientNMS's names and dtypes in the file, the entry and verify."""
    sizes = ["--size", "boxes=200", "--size", "classes=5"] if name == "cluster_nms" else ["--size", "candidates=64"]
    assert main(["export", name, "-o", str(tmp_path), *sizes, "--option", "outputs=efficientnms"]) == 0
    model = onnx.load(str(tmp_path / f"{name}.onnx"))
    types = {o.name: (onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type).name,
                      [d.dim_value for d in o.type.tensor_type.shape.dim]) for o in model.graph.output}
    assert list(types) == ["num_detections", "detection_boxes", "detection_scores", "detection_classes",
                           "detection_indices", "converged", "num_capped"]
    batch = types["num_detections"][1][0]
    assert types["num_detections"] == ("int32", [batch, 1]) and types["detection_classes"][0] == "int32"
    entry = catalog.get(name).at(options={"outputs": "efficientnms"})
    assert entry.output_names == list(types)
    rows = verify(tmp_path / f"{name}.onnx")
    assert rows and all(row.passed for row in rows), [row.failures for row in rows]


def test_catalog_export_has_no_options_stamp(exported):
    assert METADATA_OPTIONS not in {p.key for p in onnx.load(str(exported("aligned_iou"))).metadata_props}


def test_list_name_shows_sizes_and_options(capsys):
    assert main(["list", "cluster_nms", "focal_loss"]) == 0
    out = capsys.readouterr().out
    assert "batch=2 boxes=1000 classes=80" in out
    assert "iou_thr" in out and "'iou', 'diou'" in out and "in [-1, 1]" in out
    assert "gamma" in out and "(21 values)" in out


def test_options_are_checked_at_the_new_sizes(tmp_path):
    """A per-class alpha fits the class count --size sets, not the catalog's 21."""
    assert main(["export", "focal_loss", "-o", str(tmp_path), "--size", "classes=3", "--option", "alpha=0.2,0.3,0.5"]) == 0
    rows = verify(tmp_path / "focal_loss.onnx")
    assert rows and all(row.passed for row in rows), [row.failures for row in rows]
