"""models/ holds the exported catalog; it must not drift from what the code exports.

Exports are not byte-stable across runs, so this compares structure (operators, inputs, outputs)
and outputs on fresh inputs, and checks the manifest's hashes against the committed files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest

from exportloss import catalog
from exportloss.export import EXPORTERS, MANIFEST, export_model, read_manifest
from exportloss.graph_checks import op_histogram
from exportloss.onnx_graph import tensor_specs

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_every_catalog_graph_is_committed_with_a_matching_manifest():
    manifest = read_manifest(MODELS)
    by_name = {g["name"]: g for g in manifest["graphs"]}
    assert sorted(by_name) == sorted(catalog.names()), "run `make export` and commit models/"
    for name, record in by_name.items():
        data = (MODELS / record["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["sha256"], f"{name}: file changed since the manifest"
    files = {p.name for p in MODELS.glob("*.onnx")}
    assert files == {g["file"] for g in manifest["graphs"]}, "stray or missing files in models/"
    assert (MODELS / MANIFEST).exists()


@pytest.mark.parametrize("name", catalog.names())
def test_committed_graph_matches_a_fresh_export(name):
    entry = catalog.get(name)
    committed = onnx.load(str(MODELS / f"{name}.onnx"))
    record = next(g for g in read_manifest(MODELS)["graphs"] if g["name"] == name)
    assert record["exporter"] in EXPORTERS
    fresh = export_model(entry, exporter=record["exporter"], opset=record["opset"])
    assert op_histogram(committed) == op_histogram(fresh), f"{name}: operators drifted; run `make export`"
    assert tensor_specs(committed.graph.input) == tensor_specs(fresh.graph.input)
    assert [o.name for o in committed.graph.output] == [o.name for o in fresh.graph.output]
    case = entry.verification_cases(n_random=1)[0]
    run = lambda model: ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, case.inputs)
    for got, want in zip(run(committed), run(fresh)):
        assert got.shape == want.shape
        assert (abs(got.astype("float64") - want.astype("float64")) <= 1e-6).all(), f"{name}: outputs drifted"
