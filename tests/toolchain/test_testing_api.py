"""``exportloss.testing``: the adversaries as public functions, ``assert_exports``, the pytest plugin, ``exportloss check``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import exportloss
from exportloss.backends.ort import OrtBackend
from exportloss.cli import main as cli_main
from exportloss.testing import assert_exports, emulate_tf32, round_to_tf32
from exportloss.testing.check import draw_like
from test_torch_only_core import BLOCK_EXPORT_EXTRA

REPO = Path(__file__).resolve().parents[2]


def one_node_model(op: str, inputs: dict[str, list[int]], output: str, shape: list[int], **attributes) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, list(inputs), [output], **attributes)], op.lower(),
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims) for name, dims in inputs.items()],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def run_cpu(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_the_tf32_graph_rounds_exactly_like_the_bits():
    """The ONNX rounding equals the bit-level rule on random bit patterns, exact ties, near-ties, subnormals,
    the largest float32 (which rounds to infinity) and non-finite values."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    truncated = bits & ~np.uint32(0x1FFF)
    near = [truncated | np.uint32(low) for low in (0x1000, 0x0FFF, 0x1001, 0x3000)]
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(np.float32).max, np.finfo(np.float32).tiny,
                        1e-45, -3e-42, 1 + 2**-11, 1 + 3 * 2**-11, 4097, -4099], np.float32)
    x = np.concatenate([bits, *near]).view(np.float32)
    x = np.concatenate([x, special]).reshape(-1, 1)
    identity = one_node_model("MatMul", {"x": [x.shape[0], 1], "one": [1, 1]}, "y", [x.shape[0], 1])
    (got,) = run_cpu(emulate_tf32(identity), {"x": x, "one": np.ones((1, 1), np.float32)})
    want = round_to_tf32(x)
    same = (got == want) | (np.isnan(got) & np.isnan(want))  # == : the MatMul's sum turns -0 into +0
    assert same.all(), x[~same][:5]


def test_emulate_tf32_rounds_gemm_and_conv_inputs_but_not_the_bias():
    a = np.full((2, 3), 4097.0, np.float32)
    gemm = one_node_model("Gemm", {"a": [2, 3], "b": [3, 2], "c": [2]}, "y", [2, 2])
    (got,) = run_cpu(emulate_tf32(gemm), {"a": a, "b": np.eye(3, 2, dtype=np.float32), "c": np.full(2, 0.5, np.float32)})
    assert np.array_equal(got, np.full((2, 2), 4096.5, np.float32))
    conv = one_node_model("Conv", {"x": [1, 1, 1, 3], "w": [1, 1, 1, 1]}, "y", [1, 1, 1, 3])
    (got,) = run_cpu(emulate_tf32(conv), {"x": a[:1].reshape(1, 1, 1, 3), "w": np.ones((1, 1, 1, 1), np.float32)})
    assert np.array_equal(got, np.full((1, 1, 1, 3), 4096.0, np.float32))


# --- assert_exports: a correct module passes, each planted defect is caught and named ----------------------

class IoUWeightedL1(torch.nn.Module):
    """A user's box loss: per box ``(2 − IoU) · mean|pred − target|``, weighted, averaged over positive weights."""

    def forward(self, pred, target, weight):
        iou = exportloss.aligned_iou(pred, target).detach()
        per_box = (2.0 - iou) * (pred - target).abs().mean(dim=-1) * weight
        return per_box.sum() / (weight > 0).sum().clamp(min=1)


class NormalizedByMax(torch.nn.Module):
    """``float(tensor)``: the TorchScript exporter bakes the example's maximum into the graph."""

    def forward(self, x):
        return x / float(x.abs().max())


class PlainArgMax(torch.nn.Module):
    def forward(self, scores):
        return scores.argmax(dim=1)


class OneHotClassSums(torch.nn.Module):
    """Per-class feature sums as a one-hot MatMul: TF32 drops the low bits of features with 13 significant bits."""

    def forward(self, labels, features):
        one_hot = (labels[:, None] == torch.arange(4)).to(features.dtype)
        return one_hot.T @ features


class Determinant(torch.nn.Module):
    """``Det``: onnxruntime on the CPU runs it, TensorRT's parser and the CUDA provider do not."""

    def forward(self, x):
        return torch.linalg.det(x)


class DataDependentBranch(torch.nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


def boxes(generator: torch.Generator, n: int = 64) -> torch.Tensor:
    corner = torch.rand(n, 2, generator=generator) * 500
    return torch.cat([corner, corner + 10 + torch.rand(n, 2, generator=generator) * 100], dim=1)


def failure_message(module, inputs, **options) -> str:
    with pytest.raises(AssertionError) as raised:
        assert_exports(module, inputs, **options)
    return str(raised.value)


def test_a_correct_module_is_verified_in_one_call_and_an_unavailable_backend_is_skipped_not_passed():
    g = torch.Generator().manual_seed(0)
    target = boxes(g)
    pred, weight = target + torch.randn(64, 4, generator=g) * 3, torch.rand(64, generator=g) * 2
    report = assert_exports(IoUWeightedL1(), (pred, target, weight), backends=("ort-cpu", "ort-cuda"))
    checks = {(row.check, row.backend) for row in report.rows}
    assert {("export", "-"), ("example", "ort-cpu"), ("fresh inputs", "ort-cpu"), ("ties", "ort-cpu"),
            ("tf32", "ort-cpu"), ("trt", "static"), ("ort-cuda", "static")} <= checks
    fresh = next(row for row in report.rows if row.check == "fresh inputs" and row.backend == "ort-cpu")
    assert fresh.passed and fresh.cases == 3 * 2 and fresh.provider == "CPUExecutionProvider"  # 3 draws x 2 levels
    for row in report.rows:
        if row.backend == "ort-cuda":
            assert row.passed != (row.unavailable is not None)  # ran and passed, or skipped with a reason
            assert row.unavailable is None or row.verdict.startswith("SKIP (") and "CUDAExecutionProvider" in row.verdict
    assert "verdict" in report.table() and report.models["dynamo"].graph.node


def test_a_value_the_torchscript_exporter_bakes_into_a_constant_fails_fresh_inputs():
    message = failure_message(NormalizedByMax(), (torch.rand(3, 5),), exporters=("torchscript",))
    assert message.startswith("NormalizedByMax: 3 failure(s) in fresh inputs")
    assert "fresh inputs  torchscript  ort-cpu/ORT_DISABLE_ALL+ORT_ENABLE_ALL  random-0  output  15 of 15" in message
    assert "a value the exporter baked into a constant?" in message
    assert_exports(NormalizedByMax(), (torch.rand(3, 5),), exporters=("dynamo",))  # dynamo keeps it a graph value


def test_an_argmax_that_depends_on_tie_order_fails_ties():
    scores = torch.tensor([[0.5, 0.9, 0.1], [0.2, 0.3, 0.7]])
    ties = torch.tensor([[0.5, 0.9, 0.9], [0.7, 0.3, 0.7]])
    assert_exports(PlainArgMax(), (scores,), cases=[(scores.flip(1),)])  # no ties: nothing to see
    message = failure_message(PlainArgMax(), (scores,), cases={"tied": (ties,)})
    assert message.startswith("PlainArgMax: 1 failure(s) in ties")
    assert "ties   dynamo    ort-cpu  tied  output  2 of 2" in message and "[1]: got 2, as exported 0" in message


def test_a_one_hot_matmul_sum_that_tf32_changes_fails_tf32():
    labels = torch.arange(32) % 4
    features = 4097.0 + 2 * torch.randint(0, 64, (32, 3), generator=torch.Generator().manual_seed(1)).float()
    message = failure_message(OneHotClassSums(), (labels, features))
    assert message.startswith("OneHotClassSums: 4 failure(s) in tf32")  # the example and 3 fresh draws
    assert_exports(OneHotClassSums(), (labels, features), adversaries=("ties",))  # exact in float32


def test_an_operator_tensorrts_parser_lacks_fails_trt_and_ort_cuda():
    message = failure_message(Determinant(), (torch.rand(2, 3, 3),))
    assert "in trt, ort-cuda" in message.splitlines()[0]
    assert "Det is not supported by TensorRT 10.1's ONNX parser (TensorRT 10.1, 10.15, 11)" in message
    assert "the CUDA provider registers no kernel" in message
    assert_exports(Determinant(), (torch.rand(2, 3, 3),), check_trt=False, check_ort_cuda=False)


def test_a_module_that_cannot_export_gets_the_exporters_reason_in_one_line():
    message = failure_message(DataDependentBranch(), (torch.rand(3),))
    (line,) = [line for line in message.splitlines() if line.startswith("export ")]
    assert "the dynamo exporter failed on 'DataDependentBranch' at opset 18: GuardOnDataDependentSymNode: " in line
    assert "\x1b" not in message and len(message.splitlines()) == 3


def test_a_wrong_reference_fails_the_example():
    message = failure_message(PlainArgMax(), (torch.rand(2, 5),), reference=lambda scores: scores.argmin(dim=1))
    assert "in example, fresh inputs" in message.splitlines()[0]


def test_a_module_that_cannot_run_in_float64_is_told_how_to_fix_it():
    class HardCodedFloat(torch.nn.Module):
        def forward(self, x):
            return x @ torch.ones(3, 2).float()

    with pytest.raises(ValueError, match=r"float64 copy of HardCodedFloat failed: .*\.to\(x\.dtype\)"):
        assert_exports(HardCodedFloat(), (torch.rand(2, 3),))


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="exporters must be among dynamo, torchscript"):
        assert_exports(PlainArgMax(), (torch.rand(2, 5),), exporters=("onnx",))
    with pytest.raises(ValueError, match="backend must be one of"):
        assert_exports(PlainArgMax(), (torch.rand(2, 5),), backends=("cuda",))
    with pytest.raises(ValueError, match=r"cases\['wide'\]: input 'scores' is float32\[2, 6\], the example float32\[2, 5\]"):
        assert_exports(PlainArgMax(), (torch.rand(2, 5),), cases={"wide": torch.rand(2, 6)})
    with pytest.raises(TypeError, match="example_inputs must be a tensor"):
        assert_exports(PlainArgMax(), 3.0)


def test_fresh_inputs_are_drawn_like_the_example():
    rng = np.random.default_rng(0)
    integer_valued = np.array([[0.0, 3.0, 7.0], [2.0, 2.0, 5.0]], np.float32)
    drawn = draw_like(integer_valued, rng)
    assert drawn.dtype == np.float32 and np.all(drawn == np.round(drawn)) and drawn.min() >= 0 and drawn.max() <= 7
    labels = draw_like(np.array([3, 9, 5], np.int64), rng)
    assert labels.dtype == np.int64 and labels.min() >= 3 and labels.max() <= 9
    assert draw_like(np.zeros(4, bool), rng).tolist() == [False] * 4
    uniform = draw_like(np.array([0.25, 0.5, np.nan, 0.75], np.float32), rng)
    assert np.isnan(uniform[2]) and np.all((uniform[[0, 1, 3]] >= 0.25) & (uniform[[0, 1, 3]] <= 0.75))
    assert not np.all(uniform[[0, 1, 3]] == np.round(uniform[[0, 1, 3]]))


# --- the pytest plugin -------------------------------------------------------------------------------------

PLUGIN_USER_TESTS = '''
import torch


class Scale(torch.nn.Module):
    def forward(self, x):
        return 2 * x


class PlainArgMax(torch.nn.Module):
    def forward(self, x):
        return x.argmax(dim=1)


def test_scale(exportloss_check):
    exportloss_check(Scale(), (torch.rand(2, 3),))


def test_argmax(exportloss_check):
    exportloss_check(PlainArgMax(), (torch.rand(2, 3),), cases=[(torch.zeros(2, 3),)])
'''


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in ``directory`` with the plugin named explicitly (installed or not, it loads once)."""
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "exportloss.testing.pytest_plugin", "-p", "no:cacheprovider",
                           "-rfs", *args], cwd=directory, env=env, capture_output=True, text=True, timeout=600)


def test_the_pytest_plugin_runs_each_backend_and_shows_a_skip_with_its_reason(tmp_path):
    (tmp_path / "test_user.py").write_text(PLUGIN_USER_TESTS)
    result = run_pytest(tmp_path, "--exportloss-backend", "ort-cpu", "--exportloss-backend", "ort-cuda")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "FAILED test_user.py::test_argmax[dynamo-ort-cpu]" in out
    assert "E       AssertionError: PlainArgMax: 1 failure(s) in ties" in out
    assert "ties   dynamo    ort-cpu  case-0  output  2 of 2" in out
    assert "skipped: ort-cuda (dynamo: example, fresh inputs, cases): onnxruntime" in out or "1 passed" in out
    if OrtBackend.cuda().unavailable_reason() is None:
        assert "1 passed" in out  # test_scale on ort-cuda too
    else:
        assert re.search(r"SKIPPED \[1\] .*ort-cuda unavailable: onnxruntime .* has no CUDAExecutionProvider", out), out
        assert "test_user.py .sFF" in out and "2 failed, 1 passed, 1 skipped" in out


def test_the_pytest_plugin_rejects_an_unknown_backend_in_one_line(tmp_path):
    (tmp_path / "test_user.py").write_text(PLUGIN_USER_TESTS)
    result = run_pytest(tmp_path, "--exportloss-backend", "cuda")
    assert result.returncode == 4
    assert "--exportloss-backend must be one of ort-cpu, ort-cuda, ort-trt, trt; got cuda" in result.stderr


# --- exportloss check ---------------------------------------------------------------------------------------

USER_MODULE = '''
import torch


class Scale(torch.nn.Module):
    def forward(self, x, labels):
        return 2 * x + labels


class PlainArgMax(torch.nn.Module):
    def forward(self, scores):
        return scores.argmax(dim=1)


def make_scale():
    return Scale()


def make_argmax():
    return PlainArgMax()


def make_broken():
    raise RuntimeError("no weights here")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_losses.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "user_losses.py"


def test_check_passes_a_correct_module(user_module, capsys):
    assert cli_main(["check", "user_losses:make_scale", "--input", "x=2x3", "--input", "labels=2x3:int64:0..4"]) == 0
    out = capsys.readouterr().out
    assert "fresh inputs  dynamo    ort-cpu  fp32       reference  6" in out
    assert "Scale: 7 check(s) passed, 0 failed, 0 skipped" in out


def test_check_fails_a_tie_order_dependent_module_with_the_table(user_module, capsys):
    """Integer bounds on a float input draw integer values, so ties occur; the file form of MODULE works too."""
    assert cli_main(["check", f"{user_module}:make_argmax", "--input", "scores=8x5:float32:0..3"]) == 1
    out = capsys.readouterr().out
    assert "PlainArgMax: 4 failure(s) in ties" in out and "PlainArgMax: 6 check(s) passed, 1 failed, 0 skipped" in out


@pytest.mark.parametrize("argv, message", [
    (["user_losses:nope", "--input", "x=3"], "user_losses:nope: user_losses has no callable 'nope'"),
    (["user_losses:make_broken", "--input", "x=3"], "user_losses:make_broken: calling it failed: RuntimeError: no weights here"),
    (["no_such_module:make", "--input", "x=3"], "no_such_module:make: cannot import no_such_module: ModuleNotFoundError"),
    (["user_losses:make_argmax", "--input", "x=3"], "--input names x: PlainArgMax.forward takes scores"),
    (["user_losses:make_argmax", "--input", "scores=3x"], "--input expects NAME=SHAPE[:DTYPE][:LOW..HIGH]"),
    (["user_losses:make_argmax", "--input", "scores=3:complex64"], "dtype must be one of float32"),
    (["user_losses:make_scale", "--input", "x=2x3", "--input", "labels=3x3:int64"],
     "user_losses:make_scale: Scale fails on the example inputs: RuntimeError: The size of tensor a (2) must match"),
])
def test_check_usage_errors_are_one_line_exit_2(user_module, capsys, argv, message):
    assert cli_main(["check", *argv]) == 2
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert line.startswith("exportloss check: error: ") and message in line, line


def test_the_pytest_plugin_names_the_export_extra_when_it_is_missing(tmp_path):
    """The plugin loads in a core-only install; a test that uses the fixture fails with one line naming the extra."""
    (tmp_path / "conftest.py").write_text(BLOCK_EXPORT_EXTRA)
    (tmp_path / "test_user.py").write_text(PLUGIN_USER_TESTS)
    result = run_pytest(tmp_path, "-k", "scale")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "exportloss_check: onnx is not installed; the toolchain needs the `export` extra: pip install 'exportloss[export]'" in result.stdout
