"""The catalog is data: named sizes drive shapes, modules and output specs; `list` and the README tables come from it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import onnx
import pytest
import torch

from exportloss import catalog
from exportloss.bench.cases import default_cases
from exportloss.catalog.tables import BLOCK, with_tables
from exportloss.cli import main
from exportloss.export import to_torch
from exportloss.model_files import METADATA_SIZES
from exportloss.verify import verify

README = Path(__file__).resolve().parents[2] / "README.md"


def forward_outputs(entry: catalog.GraphEntry) -> list[tuple[tuple[int, ...], str]]:
    inputs = to_torch(entry.example_inputs())
    with torch.no_grad():
        out = entry.build().eval()(*(inputs[name] for name in entry.input_names))
    return [(tuple(o.shape), str(o.dtype).removeprefix("torch.")) for o in (out if isinstance(out, tuple) else (out,))]


def declared_outputs(entry: catalog.GraphEntry) -> list[tuple[tuple[int, ...], str]]:
    return [(shape, spec.dtype) for spec, shape in zip(entry.outputs, entry.output_shapes().values())]


def test_the_catalog_is_one_mapping_family_by_family():
    assert isinstance(catalog.CATALOG, Mapping) and not hasattr(catalog, "register")
    assert catalog.names() == [entry.name for family in catalog.FAMILIES.values() for entry in family]
    assert list(catalog.FAMILIES) == ["boxes", "classification", "detection", "segmentation"]
    assert len(catalog.names()) == 48


@pytest.mark.parametrize("name", catalog.names())
def test_output_specs_match_the_module(name):
    entry = catalog.get(name)
    assert forward_outputs(entry) == declared_outputs(entry)


@pytest.mark.parametrize("name, sizes", [
    ("arc_softmax", {"batch": 3, "dim": 16, "classes": 7}),
    ("center_update", {"batch": 5, "dim": 8, "classes": 4}),
    ("pairwise_giou", {"batch": 1, "boxes1": 5, "boxes2": 3}),
    ("cluster_nms", {"batch": 1, "boxes": 50, "classes": 3}),
    ("match_metrics", {"batch": 3, "preds": 7, "gts": 0}),
    ("dice_score", {"batch": 1, "classes": 3, "height": 8, "width": 5}),
])
def test_sizes_resize_inputs_outputs_and_module(name, sizes):
    entry = catalog.get(name).at(sizes)
    assert entry.sizes == {**catalog.get(name).sizes, **sizes}
    assert forward_outputs(entry) == declared_outputs(entry)
    for case in entry.verification_cases(n_random=1):
        assert {k: v.shape for k, v in case.inputs.items()} == entry.shapes(), case.name


def test_a_shape_sets_the_sizes_it_names():
    entry = catalog.get("center_loss").at(shapes={"features": (16, 128)})
    assert entry.sizes == {"batch": 16, "classes": 10, "dim": 128}
    assert entry.shapes() == {"features": (16, 128), "labels": (16,)}
    assert entry.build().centers.shape == (10, 128)
    assert catalog.get("center_loss").shapes({"labels": (8,)})["features"] == (8, 32)


def test_list_needs_no_forward_pass(monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("`exportloss list` ran a module")

    monkeypatch.setattr(torch.nn.Module, "__call__", refuse)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "arcface_loss" in out and "batch=32 dim=64 classes=100" in out and "probs float32[32,100]" in out


def test_readme_catalog_tables_are_the_generated_ones():
    text = README.read_text()
    families = [m.group("family") for m in BLOCK.finditer(text)]
    assert families[0] == "all" and {"classification", "detection", "segmentation"} <= set(families)
    assert with_tables(text) == text, "README's catalog tables differ from the catalog: run `exportloss list --readme README.md`"


def test_list_readme_regenerates_a_stale_table(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- catalog-table: detection -->\n| stale |\n<!-- /catalog-table -->\nend\n")
    assert main(["list", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "| stale |" not in text and "`max_iou_assign`" in text and text.endswith("<!-- /catalog-table -->\nend\n")
    capsys.readouterr()
    assert main(["list", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| graph | inputs | outputs | what |\n") and all(f"`{name}`" in out for name in catalog.names())


def test_export_arcface_at_other_class_count_and_dim_verifies(tmp_path):
    assert main(["export", "arcface_loss", "-o", str(tmp_path), "--size", "classes=1000", "--size", "dim=128"]) == 0
    model = onnx.load(str(tmp_path / "arcface_loss.onnx"))
    assert {tuple(init.dims) for init in model.graph.initializer} >= {(128, 1000)}
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props[METADATA_SIZES]) == {"batch": 32, "classes": 1000, "dim": 128}
    rows = verify(tmp_path / "arcface_loss.onnx")  # the stamp, not the catalog's 100 classes, rebuilds the reference
    assert rows and all(row.passed for row in rows), [row.failures for row in rows]


def test_export_box_graph_with_sizes(tmp_path):
    assert main(["export", "pairwise_iou", "-o", str(tmp_path), "--size", "boxes1=10", "--size", "boxes2=7"]) == 0
    (record,) = json.loads((tmp_path / "manifest.json").read_text())["graphs"]
    assert [i["shape"] for i in record["inputs"]] == [[2, 10, 4], [2, 7, 4]]
    assert record["outputs"][0]["shape"] == [2, 10, 7]


def test_catalog_sizes_leave_no_sizes_stamp(tmp_path):
    assert main(["export", "aligned_iou", "-o", str(tmp_path), "--size", "boxes=256"]) == 0
    assert METADATA_SIZES not in {p.key for p in onnx.load(str(tmp_path / "aligned_iou.onnx")).metadata_props}


def test_bench_asks_the_catalog_for_sizes():
    cases = {case.graph: case for case in default_cases() if case.graph in ("arcface_loss", "center_loss")}
    assert not hasattr(cases["arcface_loss"], "build")
    arcface = cases["arcface_loss"].entry()
    assert arcface.sizes == {"batch": 512, "dim": 512, "classes": 10_000}
    assert arcface.shapes() == {"features": (512, 512), "labels": (512,)}
    assert cases["center_loss"].entry().sizes == {"batch": 4096, "dim": 512, "classes": 1000}


def test_catalog_imports_without_onnx_or_onnxruntime():
    code = ("import sys; sys.modules.update(onnx=None, onnxruntime=None, onnxscript=None); "
            "import exportloss.catalog, exportloss.tolerance; "
            "print(len(exportloss.catalog.names()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "48", result.stderr
