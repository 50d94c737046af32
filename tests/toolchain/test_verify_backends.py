"""The verification harness tells the truth about where a graph ran.

On this CPU-only machine: a backend that cannot run gives ``unavailable`` rows, never PASS; a silent
onnxruntime fallback to the CPU provider is caught; ``verify --backend ort-cuda|ort-trt`` exits 2 with
one line and no onnxruntime log; nodes placed on another provider become a row note; the JSON report
holds every row; the TensorRT engine backend plugs into the same harness.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime
import pytest
from onnx.reference import ReferenceEvaluator

from exportloss import catalog
from exportloss.backends import BACKEND_NAMES, Backend, BackendUnavailable, SessionError, make_backend, split_available
from exportloss.tolerance import Tolerance
from exportloss.backends.ort import CPU, CUDA, OrtBackend
from exportloss.cli import main
from exportloss.trt import runner as trt_runner
from exportloss.verify import verify, verify_all

cpu_wheel_only = pytest.mark.skipif(CUDA in onnxruntime.get_available_providers(), reason="onnxruntime has the CUDA provider here")


class FakeSession:
    """A session that answers with onnx's reference evaluator: right numbers, claimed provider, notes."""

    def __init__(self, path, provider="FakeExecutionProvider", notes=(), scale=1.0):
        self._evaluator = ReferenceEvaluator(str(path))
        self.label = "fake"
        self.provider = provider
        self.notes = tuple(notes)
        self._scale = scale

    def run(self, inputs):
        names = self._evaluator.output_names
        return {n: (v * self._scale).astype(v.dtype) for n, v in zip(names, self._evaluator.run(None, dict(inputs)))}


class FakeBackend(Backend):
    def __init__(self, name="fake", reason=None, notes=(), scale=1.0, error=None):
        self.name, self.precision = name, "fp32"
        self._reason, self._notes, self._scale, self._error = reason, notes, scale, error

    def probe(self):
        return self._reason

    @contextmanager
    def sessions(self, path, model, entry):
        if self._error is not None:
            raise self._error
        yield [FakeSession(path, notes=self._notes, scale=self._scale)]


# --- onnxruntime providers that are not here ---------------------------------------------------------------


@cpu_wheel_only
def test_cuda_on_the_cpu_wheel_is_unavailable_not_pass(exported):
    (row,) = verify(exported("pairwise_iou"), OrtBackend.cuda())
    assert not row.passed and row.cases == 0 and row.provider == ""
    assert row.verdict.startswith("unavailable: onnxruntime ") and "has no CUDAExecutionProvider" in row.verdict


@cpu_wheel_only
def test_a_silent_fallback_to_the_cpu_provider_is_caught(exported, monkeypatch):
    """Past the availability list, onnxruntime itself swaps CUDA for the CPU provider with only a warning."""
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    backend = OrtBackend.cuda()
    assert backend.unavailable_reason() == "onnxruntime replaced CUDAExecutionProvider with CPUExecutionProvider"
    monkeypatch.setattr(OrtBackend, "probe", lambda self: None)  # past the probe, each graph's sessions are checked too
    (row,) = verify(exported("pairwise_iou"), OrtBackend.cuda())
    assert not row.passed and row.cases == 0
    assert row.verdict == "unavailable: onnxruntime replaced CUDAExecutionProvider with CPUExecutionProvider"


def test_the_proof_of_placement_checks_providers_options_and_nodes():
    """What an onnxruntime-gpu session reports, stood in for: nodes on the CPU become a note; a lie is unavailable."""

    def session(providers, options, placement):
        subgraphs = [SimpleNamespace(ep_name=ep, get_nodes=lambda ops=ops: [SimpleNamespace(op_type=op) for op in ops])
                     for ep, ops in placement.items()]
        return SimpleNamespace(get_providers=lambda: providers, get_provider_options=lambda: options,
                               get_provider_graph_assignment_info=lambda: subgraphs)

    backend = OrtBackend.cuda()
    ciou = session([CUDA, CPU], {CUDA: {"use_tf32": "0"}, CPU: {}}, {CUDA: ["Div", "Mul", "Sub"], CPU: ["Atan", "Atan", "Shape"]})
    assert backend._prove_placement(ciou) == ("3 node(s) placed on CPUExecutionProvider: Atan x2, Shape x1",)
    with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider reports use_tf32=1, not the requested 0"):
        backend._prove_placement(session([CUDA, CPU], {CUDA: {"use_tf32": "1"}}, {CUDA: ["Add"]}))
    with pytest.raises(BackendUnavailable, match="assigned no node of the graph to CUDAExecutionProvider"):
        backend._prove_placement(session([CUDA, CPU], {CUDA: {"use_tf32": "0"}}, {CPU: ["Add"]}))
    assert OrtBackend.cuda(tf32=True)._prove_placement(session([CUDA, CPU], {CUDA: {"use_tf32": "1"}}, {CUDA: ["Add"]})) == ()
    older = SimpleNamespace(get_providers=lambda: [CUDA, CPU], get_provider_options=lambda: {CUDA: {"use_tf32": "0"}})
    assert backend._prove_placement(older) == ("node placement not checked: this onnxruntime has no graph assignment record",)


@pytest.mark.parametrize("backend", ["ort-cuda", "ort-trt"])
def test_verify_an_unavailable_backend_exits_2_with_one_line_and_no_onnxruntime_log(backend, capfd):
    """Here: the CPU wheel lacks the provider. On onnxruntime-gpu without TensorRT: the provider fails to load."""
    if make_backend(backend).unavailable_reason() is None:
        pytest.skip(f"{backend} runs here")
    capfd.readouterr()
    assert main(["verify", "pairwise_iou", "--backend", backend]) == 2
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"exportloss verify: error: backend {backend} is unavailable: ")


def test_precision_semantics_of_the_gpu_backends():
    cuda = make_backend("ort-cuda")
    assert (cuda.precision, cuda.provider_options[CUDA]) == ("fp32", {"use_tf32": "0"})
    cuda_tf32 = make_backend("ort-cuda", tf32=True)
    assert (cuda_tf32.precision, cuda_tf32.provider_options[CUDA]) == ("tf32", {})
    assert make_backend("ort-trt").precision == "tf32"  # TensorRT's default: TF32 allowed for float32 layers
    assert make_backend("ort").name == make_backend("ort-cpu").name == "ort-cpu"
    with pytest.raises(ValueError, match="backend must be one of ort-cpu, ort-cuda, ort-trt, trt; got 'openvino'"):
        make_backend("openvino")


# --- the harness with backends as values ----------------------------------------------------------------------


def test_rows_of_unavailable_failing_and_noted_backends(exported):
    path = exported("aligned_iou")
    backends = [FakeBackend("gone", reason="no such device"), FakeBackend("noted", notes=("2 node(s) placed on X",)),
                FakeBackend("broken", error=SessionError("parser rejected node 3")),
                FakeBackend("lost", error=BackendUnavailable("fell back to the CPU"))]
    rows = verify_all([catalog.get("aligned_iou")], path.parent, backends)
    assert [(r.backend, r.verdict) for r in rows] == [
        ("gone", "unavailable: no such device"), ("noted", "PASS"), ("broken", "FAIL"), ("lost", "unavailable: fell back to the CPU")]
    assert rows[1].notes == ["2 node(s) placed on X"] and rows[1].provider == "FakeExecutionProvider" and rows[1].cases > 4
    assert rows[2].failures == ["parser rejected node 3"]


def test_verify_with_one_backend_and_compare_with_another(exported):
    path = exported("pairwise_giou")
    reference_row, cross_row = verify(path, FakeBackend("scaled", scale=1.01), against=OrtBackend.cpu())
    assert (reference_row.against, cross_row.against) == ("reference", "ort-cpu")
    assert not reference_row.passed and not cross_row.passed and "ort-cpu" in cross_row.failures[0]
    assert all(row.passed for row in verify(path, FakeBackend("same"), against=OrtBackend.cpu()))
    (_, cross_row) = verify(path, FakeBackend("same"), against=FakeBackend("gone", reason="no GPU"))
    assert cross_row.verdict == "unavailable: gone (compared with) is unavailable: no GPU"


def test_the_tensorrt_engine_backend_plugs_into_the_same_harness(exported, monkeypatch):
    """The engine backend's own code (plans, sessions, tolerances, rows), with a stand-in for the engine."""

    class FakeRunner:
        def __init__(self, plan):
            self.session = FakeSession(plan.decode())
            self.trt = SimpleNamespace(__version__="10.15.1")
            self.cuda = SimpleNamespace(device_name="Fake GPU")
            self.closed = False

        def run(self, feeds):
            return self.session.run(feeds)

        def close(self):
            self.closed = True

    path = exported("iou_loss")
    monkeypatch.setattr(trt_runner, "EngineRunner", FakeRunner)
    monkeypatch.setattr(trt_runner, "require_tensorrt", lambda: None)
    monkeypatch.setattr(trt_runner, "build_plan", lambda model, precision, workspace, tf32: str(path).encode())
    rows = verify(path, trt_runner.EngineBackend(tf32=True), against=OrtBackend.cpu())
    assert [(r.backend, r.precision, r.provider, r.against, r.verdict) for r in rows] == [
        ("trt", "tf32", "TensorRT 10.15.1 on Fake GPU", "reference", "PASS"),
        ("trt", "tf32", "TensorRT 10.15.1 on Fake GPU", "ort-cpu", "PASS")]
    (missing,) = verify(path, trt_runner.EngineBackend(engines_dir=path.parent / "no-plans"))
    assert missing.verdict == "FAIL" and "iou_loss.plan does not exist; run `exportloss build-engine iou_loss" in missing.failures[0]


def test_tolerance_is_a_value():
    assert make_backend("ort-cpu").tolerance(catalog.get("center_loss")) == Tolerance(1e-5, 1e-5)
    assert make_backend("ort-cpu").tolerance(catalog.get("probiou_loss")) == Tolerance(2e-4, 1e-5)
    assert Tolerance(1e-5, 1e-6).at_least(1e-2) == Tolerance(1e-2, 1e-2)


# --- the command line -----------------------------------------------------------------------------------------


def test_default_verify_runs_what_loads_and_names_the_rest_in_one_line(exported, tmp_path, capsys):
    available, unavailable = split_available([make_backend(name) for name in BACKEND_NAMES])
    models = exported("aligned_giou").parent
    report = tmp_path / "out" / "verify.json"
    assert main(["verify", "aligned_giou", "--models", str(models), "--json", str(report)]) == 0
    lines = capsys.readouterr().out.splitlines()
    not_run = [line for line in lines if line.startswith("not run (unavailable here): ")]
    assert len(not_run) == (1 if unavailable else 0)
    assert all(f"{name}: {reason}" in not_run[0] for name, reason in unavailable.items())

    data = json.loads(report.read_text())
    assert set(data) == {"seed", "onnxruntime", "unavailable_backends", "rows"}
    assert data["seed"] == catalog.VERIFICATION_SEED and data["unavailable_backends"] == unavailable
    rows = data["rows"]
    assert [row["backend"] for row in rows] == [backend.name for backend in available]
    assert all(set(row) == {"graph", "backend", "precision", "provider", "against", "tolerance", "cases", "max_abs",
                            "max_rel", "worst_case", "failures", "notes", "unavailable", "verdict"} for row in rows)
    entry = catalog.get("aligned_giou")
    assert rows[0]["tolerance"] == {"atol": entry.tolerance.atol, "rtol": entry.tolerance.rtol}
    assert (rows[0]["graph"], rows[0]["backend"], rows[0]["precision"], rows[0]["provider"], rows[0]["verdict"]) == (
        "aligned_giou", "ort-cpu", "fp32", CPU, "PASS")
    assert rows[0]["cases"] > 4 and 0 <= rows[0]["max_abs"] < 1e-5 and rows[0]["unavailable"] is None
    assert not list(report.parent.glob(".*.tmp"))


@cpu_wheel_only
def test_on_the_cpu_wheel_only_ort_cpu_runs():
    available, unavailable = split_available([make_backend(name) for name in BACKEND_NAMES])
    assert [b.name for b in available] == ["ort-cpu"] and list(unavailable) == ["ort-cuda", "ort-trt", "trt"]


def test_json_report_records_failures(exported, tmp_path, capsys):
    """A file that differs from its manifest entry is a failed row (exit 1), recorded in the report; a missing file
    is unusable input (exit 2) before anything runs."""
    source = exported("aligned_iou")
    (tmp_path / "aligned_iou.onnx").write_bytes(source.read_bytes())
    manifest = json.loads((source.parent / "manifest.json").read_text())
    for graph in manifest["graphs"]:
        graph["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    report = tmp_path / "verify.json"
    assert main(["verify", "aligned_iou", "--backend", "ort-cpu", "--models", str(tmp_path), "--json", str(report)]) == 1
    (row,) = json.loads(report.read_text())["rows"]
    assert row["verdict"] == "FAIL" and "does not match" in row["failures"][0]


# --- tools/gpu_check.sh --------------------------------------------------------------------------------


def test_gpu_check_runs_what_loads_and_says_what_it_skipped(tmp_path):
    """The script's control flow with a stand-in ``exportloss`` (the real backend probes decide what runs)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "exportloss").write_text(
        f'#!/bin/sh\necho "$*" >> "{log}"\n'
        '[ "$1 $2" = "check-ort-cuda --help" ] && exit 2\n'
        '[ "$1 $2" = "bench --help" ] && echo "usage: exportloss bench [--json PATH]"\n'
        'exit 0\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    script = Path(__file__).resolve().parents[2] / "tools" / "gpu_check.sh"
    result = subprocess.run(["bash", str(script)], env={**os.environ, "BIN": str(bin_dir), "OUT": str(tmp_path / "out")},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    available, unavailable = split_available([make_backend(name) for name in BACKEND_NAMES])
    (skipped,) = [line for line in result.stdout.splitlines() if line.startswith("gpu_check: skipped: ")]
    assert "check-ort-cuda (this exportloss has no such subcommand)" in skipped
    assert all(f"{name}: {reason}" in skipped for name, reason in unavailable.items())
    calls = log.read_text().splitlines()
    assert calls[0] == "check-trt --all --models models"
    verified = {word for call in calls if call.startswith("verify ") for word in call.split()}
    assert {b.name for b in available} <= verified and not set(unavailable) & verified
    assert "bench --device cuda (" in skipped  # no CUDA here, or the stand-in's bench has no --device
    assert result.stdout.splitlines()[-1].startswith("gpu_check: PASS in ")


@pytest.mark.parametrize("command", ["verify", "build-engine"])
def test_tf32_is_for_fp32_only(command, capsys):
    assert main([command, "pairwise_iou", "--precision", "fp16", "--tf32"]) == 2
    assert capsys.readouterr().err == f"exportloss {command}: error: --tf32 applies to fp32 only; --precision fp16 computes in fp16\n"
