"""The layering that ARCHITECTURE.md states, checked on the imports of every file of the package.

- The float64 references are independent of the graph modules: from a family package they may take the
  validated option objects (``<family>.options``) and named convention constants (UPPER_CASE, like where an
  eps enters), never code.
- The graph modules never import upward: not the references, the catalog or the toolchain; a family uses
  only the shared helpers (``ops``) and the families below it (detection builds on the boxes family).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from test_torch_only_core import PACKAGE, imported_modules

FAMILIES = ("boxes", "classification", "segmentation", "detection")
FAMILY_USES = {"boxes": {"ops"}, "classification": {"ops"}, "segmentation": {"ops"}, "detection": {"ops", "boxes"},
               "ops": set()}
"""Which internal packages each graph-module package may import, besides itself."""


def internal_imports(source: str, package: str) -> list[tuple[str, list[str]]]:
    """``(module, imported names)`` for each ``from exportloss... import ...`` of ``source`` (a file of ``package``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            found.append((".".join([*base, node.module] if node.module else base), [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("exportloss"):
            found.append((node.module, [a.name for a in node.names]))
    return found


def reference_reuses(source: str) -> list[str]:
    """What a file of ``exportloss.reference`` imports from the graph modules beyond options and constants."""
    reused = []
    for module, names in internal_imports(source, "exportloss.reference"):
        family = module.split(".")[1]
        if family in FAMILIES:
            reused += [f"{module}.{n}" for n in names if not module.endswith(".options") and not n.isupper()]
        elif family != "reference":
            reused.append(module)
    return reused


@pytest.mark.parametrize("path", sorted((PACKAGE / "reference").glob("*.py")), ids=lambda p: p.name)
def test_references_take_options_and_constants_from_the_graph_modules_never_code(path):
    assert not reference_reuses(path.read_text()), f"reference/{path.name} reuses graph-module code"


@pytest.mark.parametrize("package", sorted(FAMILY_USES))
def test_graph_modules_import_only_their_helpers_and_the_families_below(package):
    files = sorted((PACKAGE / package).glob("*.py"))
    assert files
    for path in files:
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] != "exportloss" or len(parts) < 2 or parts[1] == package:
                continue
            assert parts[1] in FAMILY_USES[package], f"{package}/{path.name} imports {module}"


def test_the_rule_catches_a_reference_that_reuses_graph_code():
    assert reference_reuses("from ..boxes.iou import pairwise_iou\nfrom ..detection.options import NMSOptions\n") == [
        "exportloss.boxes.iou.pairwise_iou"]
    assert reference_reuses("from ..catalog import CATALOG\n") == ["exportloss.catalog"]
