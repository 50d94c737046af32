"""The catalog of exportable graphs: :data:`CATALOG` maps each name to its :class:`GraphEntry`.

Each family module (:mod:`.boxes`, :mod:`.classification`, :mod:`.detection`, :mod:`.segmentation`) holds
its entries as data in ``ENTRIES``; nothing registers at import time. The order here, family by family,
is the order of ``exportloss list`` and of the README's catalog tables. ``entry.at(sizes=...)`` resizes a graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from ..tolerance import Tolerance
from . import boxes, classification, detection, segmentation
from .entry import (
    EXAMPLE_SEED,
    VERIFICATION_SEED,
    Case,
    GraphEntry,
    InputShapes,
    Shapes,
    Sizes,
    TensorSpec,
    UnknownGraphError,
)


def _by_name(*families: tuple[GraphEntry, ...]) -> MappingProxyType:
    entries = [entry for family in families for entry in family]
    catalog = {entry.name: entry for entry in entries}
    if len(catalog) != len(entries):
        raise ValueError("two catalog entries share a name")
    return MappingProxyType(catalog)


CATALOG = _by_name(boxes.ENTRIES, classification.ENTRIES, detection.ENTRIES, segmentation.ENTRIES)
"""Every catalog graph by name, family by family."""

FAMILIES = {"boxes": boxes.ENTRIES, "classification": classification.ENTRIES, "detection": detection.ENTRIES,
            "segmentation": segmentation.ENTRIES}


def get(name: str) -> GraphEntry:
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownGraphError(f"unknown graph {name!r}; `exportloss list` shows the catalog") from None


def names() -> list[str]:
    return list(CATALOG)


def resolve(names_or_all: Sequence[str], all_graphs: bool) -> list[GraphEntry]:
    if all_graphs:
        return list(CATALOG.values())
    return [get(name) for name in names_or_all]


__all__ = [
    "CATALOG", "EXAMPLE_SEED", "FAMILIES", "VERIFICATION_SEED", "Case", "GraphEntry", "InputShapes", "Shapes", "Sizes",
    "TensorSpec", "Tolerance", "UnknownGraphError", "get", "names", "resolve",
]
