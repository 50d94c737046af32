"""The command line and the Python API's errors for bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import onnx
import pytest
import torch

import exportloss
from exportloss.cli import list_graphs
from exportloss.cli import main
from exportloss.export import METADATA_GRAPH

BOXES = torch.rand(5, 4)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: exportloss.pairwise_iou(torch.rand(5, 3), BOXES), ValueError, r"boxes1 must have shape \[\.\.\., N, 4\]; got \[5, 3\]"),
        (lambda: exportloss.aligned_iou(BOXES, torch.rand(5, 5)), ValueError, r"boxes2 must have shape \[\.\.\., 4\]"),
        (lambda: exportloss.pairwise_iou(BOXES, BOXES, kind="dice"), ValueError, r"kind must be one of 'iou', 'giou', 'diou', 'ciou', 'eiou', 'siou', 'alpha_iou'; got 'dice'"),
        (lambda: exportloss.pairwise_iou(BOXES, BOXES, fmt="yxyx"), ValueError, r"fmt must be one of 'xyxy', 'xywh', 'cxcywh'; got 'yxyx'"),
        (lambda: exportloss.pairwise_iou(torch.rand(2, 5, 4), torch.rand(3, 5, 4)), ValueError, r"leading dimensions of boxes1 \[2\] and boxes2 \[3\] do not broadcast"),
        (lambda: exportloss.aligned_iou(torch.rand(5, 4), torch.rand(6, 4)), ValueError, r"do not broadcast"),
        (lambda: exportloss.pairwise_iou(torch.ones(5, 4, dtype=torch.int64), BOXES), TypeError, r"boxes1 must be a floating-point tensor; got dtype torch.int64"),
        (lambda: exportloss.pairwise_iou([[0, 0, 1, 1]], BOXES), TypeError, r"boxes1 must be a torch.Tensor; got list"),
        (lambda: exportloss.IoULoss(reduction="avg"), ValueError, r"reduction must be one of 'mean', 'sum', 'none'; got 'avg'"),
        (lambda: exportloss.IoULoss()(torch.rand(5, 3), BOXES), ValueError, r"pred must have shape"),
        (lambda: exportloss.IoULoss()(BOXES, BOXES, torch.rand(4)), ValueError, r"weight"),
    ],
)
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_cli_list_shows_shapes(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "pairwise_ciou" in out and "float32[2,128,4]" in out and "float32[2,128,96]" in out


def test_cli_unknown_graph_is_one_line(capsys):
    assert main(["export", "no_such_graph"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "exportloss export: error: unknown graph 'no_such_graph'; `exportloss list` shows the catalog"


@pytest.mark.parametrize("shape", ["boxes1", "boxes1=", "boxes1=1xax4", "=1x2x4", "boxes1=0x4x4"])
def test_cli_malformed_shape_is_one_line(capsys, shape):
    assert main(["export", "pairwise_iou", "--shape", shape]) == 2
    assert "--shape expects INPUT=D1xD2x..." in capsys.readouterr().err


def test_cli_shape_for_unknown_input_or_rank(capsys, tmp_path):
    assert main(["export", "pairwise_iou", "-o", str(tmp_path), "--shape", "pred=2x4"]) == 2
    assert "has no input 'pred'" in capsys.readouterr().err
    assert main(["export", "pairwise_iou", "-o", str(tmp_path), "--shape", "boxes1=2x4"]) == 2
    assert "expects rank 3" in capsys.readouterr().err


def test_cli_dynamo_below_opset_18_says_to_use_torchscript(capsys, tmp_path):
    assert main(["export", "pairwise_iou", "-o", str(tmp_path), "--opset", "17"]) == 2
    assert "--opset 17: the dynamo exporter writes opsets 18 to" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_torchscript_at_opset_17(tmp_path, capsys):
    assert main(["export", "pairwise_ciou", "-o", str(tmp_path), "--exporter", "torchscript", "--opset", "17"]) == 0
    assert "(opset 17, torchscript)" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "pairwise_ciou.onnx")]) == 0


def test_cli_export_then_verify_file_and_name(tmp_path, capsys):
    assert main(["export", "aligned_giou", "-o", str(tmp_path), "--shape", "boxes1=1x10x4", "--shape", "boxes2=1x10x4"]) == 0
    assert main(["verify", str(tmp_path / "aligned_giou.onnx")]) == 0
    assert main(["verify", "aligned_giou", "--models", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "1 passed, 0 failed" in out


def test_cli_verify_missing_graph_fails(tmp_path, capsys):
    """A missing file is unusable input (exit 2, README "Exit codes"), not a failed row (issue 22, finding 12)."""
    assert main(["verify", "pairwise_iou", "--models", str(tmp_path)]) == 2
    assert "no pairwise_iou.onnx; run `exportloss export pairwise_iou`" in capsys.readouterr().err


def test_python_dash_m_works():
    result = subprocess.run([sys.executable, "-m", "exportloss", "--help"], capture_output=True, text=True, check=True)
    assert "verify" in result.stdout


# --- exit codes and one-line errors (issue 12) ------------------------------------------------------

def one_error_line(capsys, command: str) -> str:
    """The single stderr line of a failed command; stdout stays empty (no table, no traceback)."""
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"exportloss {command}: error: "), err
    assert "Traceback" not in out + err
    return lines[0]


@pytest.mark.parametrize("opset", ["29", "99", "0"])
def test_cli_unsupported_opset_is_an_error(capsys, tmp_path, opset):
    assert main(["export", "aligned_iou", "-o", str(tmp_path), "--opset", opset]) == 2
    assert f"--opset {opset}: the dynamo exporter writes opsets 18 to " in one_error_line(capsys, "export")
    assert main(["export", "aligned_iou", "-o", str(tmp_path), "--opset", opset, "--exporter", "torchscript"]) == 2
    assert "the torchscript exporter writes opsets 13 to 20" in one_error_line(capsys, "export")
    assert not list(tmp_path.iterdir())


def test_cli_opset_the_converter_cannot_reach_is_an_error(capsys, tmp_path, monkeypatch):
    """torch falls back to opset 18 when onnx's version converter fails; that is an error, not 'exported (opset 18)'."""
    import onnxscript.version_converter

    monkeypatch.setattr(onnxscript.version_converter, "convert_version", lambda model, target_version, fallback=None: None)
    assert main(["export", "aligned_iou", "-o", str(tmp_path), "--opset", "19"]) == 2
    assert "could not convert 'aligned_iou' to opset 19 (it wrote opset 18)" in one_error_line(capsys, "export")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, args, message", [
    ("pairwise_iou", ["--shape", "boxes1=2x10x3"], "--shape boxes1=2x10x3: graph 'pairwise_iou' fixes dimension 2 of boxes1 at 4"),
    ("pairwise_iou", ["--shape", "boxes1=3x10x4", "--shape", "boxes2=2x96x4"],
     "--shape boxes2=2x96x4: dimension 0 of boxes2 is size 'batch', which --shape boxes1=3x10x4 sets to 3"),
    ("arcface_loss", ["--size", "dim=128", "--shape", "features=32x64"],
     "--shape features=32x64: dimension 1 of features is size 'dim', which --size dim=128 sets to 128"),
    ("pairwise_iou", ["--size", "boxes=10", "--size", "classes=3"],
     "graph 'pairwise_iou' has no size boxes, classes; its sizes are batch, boxes1, boxes2"),
    ("jaccard_loss", ["--size", "classes=3"], "graph 'jaccard_loss' cannot take inputs logits=2x3x64x64, target=2x64x64: "),
])
def test_cli_shape_or_size_contradicting_the_graph_is_one_line(capsys, tmp_path, name, args, message):
    assert main(["export", name, "-o", str(tmp_path), *args]) == 2
    assert message in one_error_line(capsys, "export")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("size", ["classes", "classes=", "=3", "classes=-1", "classes=1e4"])
def test_cli_malformed_size_is_one_line(capsys, size):
    assert main(["export", "arcface_loss", "--size", size]) == 2
    assert "--size expects NAME=N with a non-negative integer" in capsys.readouterr().err


@pytest.fixture
def bad_files(tmp_path, exported):
    """Model files verify and check-trt must refuse, by the message that names each."""
    good = exported("aligned_iou")
    files = {}
    files["empty.onnx"] = b""
    files["truncated.onnx"] = good.read_bytes()[:1000]
    files["text.onnx"] = b"this is not a model\n"
    foreign = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])]))
    files["pairwise_iou.onnx"] = foreign.SerializeToString()
    for stamp in ("aligned_giou", "focal_loss", "no_such_graph"):
        model = onnx.load(str(good))
        onnx.helper.set_model_props(model, {METADATA_GRAPH: stamp, "exportloss.exporter": "dynamo"})
        files[f"stamped_{stamp}.onnx"] = model.SerializeToString()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "dir.onnx").mkdir()
    return tmp_path


BAD_FILE_MESSAGES = {
    "empty.onnx": "empty file, not an ONNX model",
    "truncated.onnx": "not an ONNX model (",
    "text.onnx": "not an ONNX model (",
    "dir.onnx": "not a file",
    "missing.onnx": "does not exist",
    "pairwise_iou.onnx": "not written by `exportloss export` (no 'exportloss.graph' metadata",
    "stamped_aligned_giou.onnx": "outputs ['iou'] are not those of catalog graph 'aligned_giou', ['giou']",
    "stamped_focal_loss.onnx": "are not those of catalog graph 'focal_loss'",
    "stamped_no_such_graph.onnx": "metadata names 'no_such_graph', which is not a catalog graph",
}


@pytest.mark.parametrize("name", sorted(BAD_FILE_MESSAGES))
def test_cli_verify_refuses_unusable_files_in_one_line(capsys, bad_files, name):
    path = bad_files / name
    assert main(["verify", str(path)]) == 2
    line = one_error_line(capsys, "verify")
    assert str(path) in line and BAD_FILE_MESSAGES[name] in line


@pytest.mark.parametrize("name", ["empty.onnx", "truncated.onnx", "text.onnx", "dir.onnx", "missing.onnx"])
def test_cli_check_trt_refuses_unusable_files_in_one_line(capsys, bad_files, name):
    path = bad_files / name
    assert main(["check-trt", str(path)]) == 2
    line = one_error_line(capsys, "check-trt")
    assert str(path) in line and BAD_FILE_MESSAGES[name] in line


def test_cli_catalog_name_in_models_dir_holding_a_foreign_file(capsys, bad_files):
    assert main(["verify", "pairwise_iou", "--models", str(bad_files)]) == 2
    assert "pairwise_iou.onnx: not written by `exportloss export`" in one_error_line(capsys, "verify")
    assert main(["check-trt", "pairwise_iou", "--models", str(bad_files)]) == 2
    assert "pairwise_iou.onnx: not written by `exportloss export`" in one_error_line(capsys, "check-trt")


def test_cli_check_trt_takes_any_valid_onnx_file(capsys, bad_files):
    """check-trt is for users' own models too: a foreign but valid file is checked, not refused."""
    assert main(["check-trt", str(bad_files / "pairwise_iou.onnx"), "--trt-version", "10.1"]) in (0, 1)
    assert "1 graph(s) checked" in capsys.readouterr().out


def test_cli_export_onto_a_file_is_one_line(capsys, tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    assert main(["export", "aligned_iou", "-o", str(target)]) == 2
    assert f"-o {target}: cannot write there (not a directory)" in one_error_line(capsys, "export")
    assert target.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories; the next test simulates it")
def test_cli_export_into_a_read_only_directory_is_one_line(capsys, tmp_path):
    tmp_path.chmod(0o555)
    try:
        assert main(["export", "aligned_iou", "-o", str(tmp_path)]) == 2
    finally:
        tmp_path.chmod(0o755)
    assert f"-o {tmp_path}: cannot write there (Permission denied)" in one_error_line(capsys, "export")


def test_cli_export_write_refused_is_one_line(capsys, tmp_path, monkeypatch):
    import exportloss.model_files

    def refuse(directory):
        raise PermissionError(13, "Permission denied", str(directory / ".manifest.json.lock"))

    monkeypatch.setattr(exportloss.model_files, "manifest_lock", refuse)
    assert main(["export", "aligned_iou", "-o", str(tmp_path)]) == 2
    assert f"-o {tmp_path}: cannot write there (Permission denied: {tmp_path / '.manifest.json.lock'})" in one_error_line(capsys, "export")


@pytest.mark.parametrize("argv, message", [
    (["verify", "aligned_iou", "--seed", "-1"], "argument --seed: expected a non-negative integer; got -1"),
    (["verify", "aligned_iou", "--seed", "x"], "argument --seed: expected a non-negative integer; got 'x'"),
    (["build-engine", "aligned_iou", "--workspace", "0"], "argument --workspace: expected a positive integer; got 0"),
    (["export", "--exporter", "jit"], "argument --exporter: invalid choice: 'jit'"),
    (["no-such-command"], "invalid choice: 'no-such-command'"),
])
def test_cli_bad_arguments_are_one_line_with_status_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err, err


def test_cli_debug_shows_the_traceback(capsys, tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert main(["verify", str(tmp_path / "empty.onnx"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ModelFileError" in err
    assert err.splitlines()[-1].endswith("empty.onnx: empty file, not an ONNX model")


def test_cli_internal_error_is_one_line_with_status_3(capsys, monkeypatch):
    def crash(args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(list_graphs, "run", crash)
    assert main(["list"]) == 3
    line = one_error_line(capsys, "list")
    assert "internal error: RuntimeError: boom" in line and "--debug" in line


def test_cli_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "--debug" in capsys.readouterr().out
