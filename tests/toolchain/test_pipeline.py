"""Every catalog graph exports with both exporters, passes the structural checks and verifies in onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from exportloss import catalog
from exportloss.catalog import Case, GraphEntry, TensorSpec
from exportloss.export import export_graph, read_manifest
from exportloss.graph_checks import GraphCheckError, check_graph
from exportloss.verify import verify

NAMES = catalog.names()


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("name", NAMES)
def test_graph_exports_and_verifies(exported, name, exporter):
    path = exported(name, exporter)
    model = onnx.load(str(path))
    check_graph(model, allowed_ops=catalog.get(name).allowed_ops)
    assert not list(path.parent.glob("*.data")), "graphs must be single files"
    rows = verify(path)
    assert rows and all(row.passed for row in rows), [row.failures for row in rows]
    assert all(row.cases >= 2 * 4 for row in rows)


class BakesMaxIntoConstant(nn.Module):
    """Divides by ``x.max().item()``: the TorchScript exporter freezes the example's maximum."""

    def forward(self, x):
        return x / x.max().item()


BAKED = GraphEntry(
    name="baked_constant",
    summary="test-only graph that TorchScript exports wrongly",
    sizes={},
    make=lambda sizes: BakesMaxIntoConstant(),
    inputs=(TensorSpec("x", (16,)),),
    outputs=(TensorSpec("y", (16,)),),
    reference=lambda module, x: x / x.max(),
    random_inputs=lambda shapes, rng: {"x": rng.uniform(1, 10, shapes["x"]).astype(np.float32)},
    edge_cases=lambda shapes, rng: [],
)


def test_fresh_inputs_catch_values_baked_in_by_torchscript(tmp_path):
    path = export_graph(BAKED, tmp_path, exporter="torchscript").path
    rows = verify(path, entry=BAKED)
    assert not rows[0].passed
    assert "out of tolerance" in rows[0].failures[0]


def test_check_graph_rejects_banned_ops_and_dynamic_inputs():
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.INT64, [1, "k"])
    graph = onnx.helper.make_graph([onnx.helper.make_node("NonZero", ["x"], ["y"])], "g", [x], [y])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    with pytest.raises(GraphCheckError, match="NonZero"):
        check_graph(model)
    with pytest.raises(GraphCheckError, match="dynamic dimension"):
        check_graph(model, allowed_ops={"NonZero"})


def test_failed_export_leaves_no_file_and_manifest_unchanged(tmp_path, monkeypatch):
    export_graph(catalog.get("pairwise_iou"), tmp_path)
    before = (tmp_path / "manifest.json").read_text()

    def fail(*args, **kwargs):
        raise GraphCheckError("injected failure")

    monkeypatch.setattr("exportloss.export.check_graph", fail)
    with pytest.raises(GraphCheckError):
        export_graph(catalog.get("pairwise_giou"), tmp_path)
    assert not (tmp_path / "pairwise_giou.onnx").exists()
    assert not list(tmp_path.glob(".*tmp"))
    assert (tmp_path / "manifest.json").read_text() == before


def test_manifest_records_each_graph(tmp_path):
    export_graph(catalog.get("pairwise_diou"), tmp_path)
    export_graph(catalog.get("ciou_loss"), tmp_path, exporter="torchscript")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    by_name = {g["name"]: g for g in manifest["graphs"]}
    assert set(by_name) == {"pairwise_diou", "ciou_loss"}
    assert by_name["pairwise_diou"]["inputs"] == [
        {"name": "boxes1", "shape": [2, 128, 4], "dtype": "float32"},
        {"name": "boxes2", "shape": [2, 96, 4], "dtype": "float32"},
    ]
    assert by_name["pairwise_diou"]["outputs"] == [{"name": "diou", "shape": [2, 128, 96], "dtype": "float32"}]
    assert by_name["ciou_loss"]["exporter"] == "torchscript"
    assert by_name["ciou_loss"]["outputs"][0]["shape"] == []
    assert {"torch", "onnx", "onnxruntime", "onnxscript"} <= set(manifest["versions"])


def test_shape_override_exports_and_verifies_at_that_shape(tmp_path):
    entry = catalog.get("pairwise_ciou")
    path = export_graph(entry, tmp_path, shapes={"boxes1": (1, 300, 4), "boxes2": (1, 7, 4)}).path
    model = onnx.load(str(path))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 300, 4]
    assert all(row.passed for row in verify(path))
    assert read_manifest(tmp_path)["graphs"][0]["outputs"][0]["shape"] == [1, 300, 7]


def test_verification_cases_differ_from_export_example():
    for name in NAMES:
        entry = catalog.get(name)
        example = entry.example_inputs()
        for case in entry.verification_cases():
            assert isinstance(case, Case)
            assert set(case.inputs) == set(example)
            assert any(not np.array_equal(case.inputs[k], example[k]) for k in example), (name, case.name)
            for spec in entry.inputs:
                assert case.inputs[spec.name].shape == entry.shapes()[spec.name] and case.inputs[spec.name].dtype == spec.dtype


def test_reference_runs_in_float64():
    entry = catalog.get("aligned_ciou")
    inputs = {k: torch.from_numpy(v).double() for k, v in entry.example_inputs().items()}
    assert entry.reference(entry.build(), inputs["boxes1"], inputs["boxes2"]).dtype == torch.float64
