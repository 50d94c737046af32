"""The core (graph modules, helpers, references, catalog) runs on torch and numpy alone; the toolchain's
packages come with the ``export`` extra, and the command line says so in one line when they are missing."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exportloss._extras import EXPORT_EXTRA_MODULES

PACKAGE = Path(__file__).resolve().parents[2] / "exportloss"
CORE_PACKAGES = ("boxes", "classification", "segmentation", "detection", "ops", "reference")
"""The graph modules, their shared helpers and the float64 references."""
THIRD_PARTY = {"torch", "numpy"}

BLOCK_EXPORT_EXTRA = textwrap.dedent(f"""
    import importlib.abc, sys

    class BlockExportExtra(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {sorted(EXPORT_EXTRA_MODULES)!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)

    sys.meta_path.insert(0, BlockExportExtra())
""")
"""Python source that makes the ``export`` extra's packages uninstalled for the rest of the process."""


def imported_modules(path: Path) -> list[str]:
    """Absolute names of every module ``path`` imports, at the top or inside functions."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
                # ``from . import name`` may import a submodule: check it as one
                names += [f"{module}.{alias.name}" for alias in node.names] if not node.module else [module]
            else:
                names.append(node.module)
    return names


def core_files() -> list[Path]:
    return sorted(path for name in CORE_PACKAGES for path in (PACKAGE / name).rglob("*.py"))


def test_the_scan_finds_the_core():
    files = core_files()
    assert {path.parent.name for path in files} == set(CORE_PACKAGES) and len(files) > 20
    assert "torch" in imported_modules(PACKAGE / "boxes" / "iou.py")


@pytest.mark.parametrize("path", core_files(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_graph_modules_import_only_torch_numpy_and_core_helpers(path):
    allowed_internal = tuple(f"exportloss.{name}" for name in CORE_PACKAGES)
    for module in imported_modules(path):
        top = module.partition(".")[0]
        if top == "exportloss":
            assert module.startswith(allowed_internal), f"{path.name} imports {module}, outside the torch-only core"
        else:
            assert top in THIRD_PARTY or top in sys.stdlib_module_names or top == "__future__", (
                f"{path.name} imports {module}: the core may import only torch, numpy and the standard library")


def run_python(source: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=300,
                          cwd=PACKAGE.parent)


def test_import_exportloss_loads_no_toolchain_package():
    result = run_python(textwrap.dedent(f"""
        import sys
        import exportloss, exportloss.catalog
        print(sorted({{name.partition(".")[0] for name in sys.modules}} & set({sorted(EXPORT_EXTRA_MODULES)!r})))
    """))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_core_works_without_the_export_extra():
    result = run_python(BLOCK_EXPORT_EXTRA + textwrap.dedent("""
        import torch
        import exportloss
        from exportloss import catalog
        boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
        print(exportloss.pairwise_iou(boxes, boxes)[0, 1].item(), len(catalog.names()))
    """))
    assert result.returncode == 0, result.stderr
    iou, graphs = result.stdout.split()
    assert float(iou) == pytest.approx(1 / 7) and int(graphs) > 20


def test_the_command_line_names_the_export_extra_when_it_is_missing():
    result = run_python(BLOCK_EXPORT_EXTRA + "from exportloss.__main__ import main\nraise SystemExit(main())")
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("exportloss: error: ") and "`export` extra" in line and "exportloss[export]" in line


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_core_dependencies_are_torch_and_numpy_and_every_one_is_pinned():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    core = {requirement_name(r) for r in project["dependencies"]}
    export = {requirement_name(r) for r in project["optional-dependencies"]["export"]}
    assert core == {"torch", "numpy"}
    assert {"onnx", "onnxscript", "onnxruntime", "onnxconverter-common", "rich", "filelock"} <= export
    for constraints in ("constraints.txt", "constraints-bench.txt"):
        pinned = {requirement_name(line) for line in (PACKAGE.parent / constraints).read_text().splitlines()
                  if line.strip() and not line.startswith("#")}
        assert core | export <= pinned, f"{constraints} pins no version of {sorted((core | export) - pinned)}"
