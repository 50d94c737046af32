"""The README's code blocks run as written.

Each ```python block runs on its own (a fresh namespace, in a temporary working directory), so every
block carries its own imports and inputs. The ``exportloss ...`` lines of the ```sh blocks run in order,
in one temporary working directory (a line may use a file an earlier one wrote, as a reader would), each
through the command line's ``main`` and each expected to exit 0. Other shell lines (``make ...``) are not
run: they set up environments.

Two rules keep this under a minute:

* A block preceded by ``<!-- readme-test: skip (REASON) -->`` is not run; REASON must say why (it needs
  TensorRT and a GPU, or it is a timing run). The test fails if a skip marker gives no reason.
* A command line with ``--all`` is not run: it exports or checks the whole catalog (minutes), which
  ``make demo`` and the rest of the suite already do.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from exportloss.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*(?:\((?P<reason>[^)]*)\))?\s*-->")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def code_blocks(text: str) -> list[tuple[int, str, str, str | None]]:
    """``(line, language, code, skip_reason)`` for every fenced block."""
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        skip = SKIP.fullmatch(before.strip())
        reason = None
        if skip:
            reason = (skip.group("reason") or "").strip()
            assert reason, f"README.md:{line}: a readme-test skip marker must give its reason"
        blocks.append((line, match.group(1), match.group(2), reason))
    return blocks


BLOCKS = code_blocks(README.read_text())
PYTHON = [(line, code) for line, language, code, skip in BLOCKS if language == "python" and skip is None]
SHELL = [(line, code) for line, language, code, skip in BLOCKS if language == "sh" and skip is None]


def test_the_readme_has_runnable_blocks():
    assert len(PYTHON) >= 3 and len(SHELL) >= 2
    assert all(language in ("python", "sh") for _, language, _, _ in BLOCKS), "a block without a known language"


@pytest.mark.parametrize("line, code", PYTHON, ids=[f"README.md:{line}" for line, _ in PYTHON])
def test_python_block_runs(line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme"})


def command_lines() -> list[tuple[int, list[str]]]:
    commands = []
    for line, code in SHELL:
        for offset, text in enumerate(code.splitlines()):
            words = shlex.split(text, comments=True)
            if words[:1] == ["exportloss"] and "--all" not in words:
                commands.append((line + 1 + offset, words[1:]))
    return commands


def test_shell_commands_run_in_order(tmp_path, monkeypatch, capsys):
    commands = command_lines()
    assert any(args[0] == "check-trt" for _, args in commands)
    monkeypatch.chdir(tmp_path)
    for line, args in commands:
        status = main(args)
        out, err = capsys.readouterr()
        assert status == 0, f"README.md:{line}: `exportloss {shlex.join(args)}` exited {status}\n{err or out[-2000:]}"


class YOLOv8nStandIn:
    """Builds ``yolov8n.onnx`` with ultralytics YOLOv8n's interface at ``imgsz=640``: input ``images [1, 3, 640, 640]``,
    output ``output0 [1, 84, 8400]`` (``cx, cy, w, h`` in pixels on the stride 8/16/32 grids, 80 class scores)."""

    @staticmethod
    def save(path: Path) -> None:
        import torch

        class Head(torch.nn.Module):
            def __init__(self):
                super().__init__()
                generator = torch.Generator().manual_seed(8)
                self.convs = torch.nn.ModuleList(torch.nn.Conv2d(3, 84, stride, stride=stride) for stride in (8, 16, 32))
                with torch.no_grad():
                    for parameter in self.parameters():
                        parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)

            def forward(self, images):
                outputs = []
                for conv, stride in zip(self.convs, (8, 16, 32)):
                    raw = conv(images)
                    cells = raw.shape[-1]
                    ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
                    grid = torch.stack([xs, ys]).reshape(1, 2, -1).float()
                    raw = raw.flatten(2)
                    centre = (grid + 0.5 + torch.tanh(raw[:, 0:2])) * stride
                    size = (1.0 + 4.0 * torch.sigmoid(raw[:, 2:4])) * stride
                    outputs.append(torch.cat([centre, size, torch.sigmoid(raw[:, 4:] * 20 - 3)], dim=1))
                return torch.cat(outputs, dim=2)  # [1, 84, 8400]

        torch.onnx.export(Head().eval(), (torch.rand(1, 3, 640, 640),), str(path), dynamo=False, opset_version=19,
                          input_names=["images"], output_names=["output0"])


def test_yolov8_attach_block_runs_as_printed_on_a_stand_in(tmp_path, monkeypatch, capsys):
    """The "Add NMS to your detector" command lines, as printed, on a test-built ``yolov8n.onnx`` (no downloads)."""
    (code,) = [code for _, language, code, _ in BLOCKS if language == "sh" and "exportloss attach yolov8n.onnx" in code]
    commands = [words[1:] for words in (shlex.split(text, comments=True) for text in code.splitlines())
                if words[:1] == ["exportloss"]]
    assert [args[0] for args in commands] == ["attach", "verify", "check-trt", "check-ort-cuda"]
    monkeypatch.chdir(tmp_path)
    YOLOv8nStandIn.save(tmp_path / "yolov8n.onnx")
    for args in commands:
        status = main(args)
        out, err = capsys.readouterr()
        assert status == 0, f"`exportloss {shlex.join(args)}` exited {status}\n{err or out[-2000:]}"
