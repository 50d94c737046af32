"""The command line and the Python API's errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import exportloss
from exportloss.cli import main

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
    assert "for opset 17 use --exporter torchscript" in capsys.readouterr().err
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
    assert main(["verify", "pairwise_iou", "--models", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().out


def test_python_dash_m_works():
    result = subprocess.run([sys.executable, "-m", "exportloss", "--help"], capture_output=True, text=True, check=True)
    assert "verify" in result.stdout
