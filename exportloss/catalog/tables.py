"""The README's catalog tables, generated from the catalog's specs (``make readme-tables``:
``exportloss list --readme README.md``).

A table sits between ``<!-- catalog-table: FAMILY -->`` (or ``all``) and ``<!-- /catalog-table -->``;
``tests/toolchain/test_catalog.py`` fails when a table differs from the generated one. Entries of one
family with the same ``readme`` text and the same shapes share a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .entry import GraphEntry, TensorSpec

DTYPES = {"float64": "f64", "float32": "f32", "int64": "i64", "int32": "i32", "bool": "bool"}
BLOCK = re.compile(r"(<!-- catalog-table: (?P<family>\w+) -->\n)(?P<table>.*?)(<!-- /catalog-table -->)", re.S)


def _shape(spec: TensorSpec, entry: GraphEntry) -> str:
    return f"{DTYPES.get(spec.dtype, spec.dtype)}[{','.join(map(str, spec.resolve(entry.sizes)))}]"


def _outputs(group: list[GraphEntry]) -> str:
    first = group[0]
    names = list(dict.fromkeys(entry.output_names[0] for entry in group))
    if len(names) == 1 or len(first.outputs) > 1:
        return ", ".join(f"`{spec.name}` {_shape(spec, first)}" for spec in first.outputs)
    shown = "/".join(f"`{name}`" for name in names[:2]) + ("/…" if len(names) > 2 else "")
    return f"{shown} {_shape(first.outputs[0], first)}"


def _row_key(entry: GraphEntry) -> tuple:
    return (entry.readme or entry.summary, tuple(_shape(s, entry) for s in (*entry.inputs, *entry.outputs)))


def markdown_table(entries: Iterable[GraphEntry]) -> str:
    """One Markdown table: graph, inputs, outputs, what; entries with the same text and shapes share a row."""
    groups: dict[tuple, list[GraphEntry]] = {}
    for entry in entries:
        groups.setdefault(_row_key(entry), []).append(entry)
    lines = ["| graph | inputs | outputs | what |", "|---|---|---|---|"]
    for (text, _), group in groups.items():
        graphs = ", ".join(f"`{entry.name}`" for entry in group)
        inputs = ", ".join(f"`{spec.name}` {_shape(spec, group[0])}" for spec in group[0].inputs)
        lines.append(f"| {graphs} | {inputs} | {_outputs(group)} | {text} |")
    return "\n".join(lines) + "\n"


def family_table(family: str) -> str:
    """The table of one family, or of the whole catalog for ``all``."""
    from . import CATALOG, FAMILIES

    if family == "all":
        return markdown_table(CATALOG.values())
    if family not in FAMILIES:
        raise ValueError(f"unknown catalog family {family!r} in a catalog-table marker; families: all, {', '.join(FAMILIES)}")
    return markdown_table(FAMILIES[family])


def with_tables(readme: str) -> str:
    """``readme`` with every marked catalog table regenerated."""
    return BLOCK.sub(lambda m: m.group(1) + family_table(m.group("family")) + m.group(4), readme)
