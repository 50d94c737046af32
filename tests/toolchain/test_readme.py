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
