"""Write the TensorRT support tables ``exportloss/trt/tensorrt-{10.1,10.15,11}.json``.

Source: the ONNX-TensorRT parser's own operator table at the 10.1 GA release
(``/work/shared/reference/tensorrt-10.1-onnx-operators.md``, a copy of onnx/onnx-tensorrt
``docs/operators.md`` at commit 96e7811), plus the rows that later releases change, as documented in
``/work/shared/reference/tensorrt-versions.md`` (``LATER_RELEASES`` below restates them).

Each restriction sentence of the table is turned into a machine-checkable rule when its wording is one
of the recognised patterns and the names it quotes exist in the operator's ONNX schema; every other
sentence is kept verbatim under ``unchecked`` so the static check can say it did not prove it.

Usage: ``python tools/make_trt_tables.py [--table PATH] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import onnx.defs

REFERENCE = Path("/work/shared/reference")
TABLE_SOURCE = "onnx/onnx-tensorrt docs/operators.md at the 10.1 GA release (commit 96e7811)"
VERSIONS_SOURCE = "tensorrt-versions.md (NVIDIA ONNX opset guide, onnx-tensorrt operators.md 10.15, TensorRT 11 CHANGELOG)"

LATER_RELEASES = {
    "10.15": {
        "opset": (9, 24),
        "precision_flags": True,
        "restrictions": {
            "ScatterND": "`reduction` other than `none` not supported",
            "Squeeze": "`axes` must be resolvable to a constant",
            "Unsqueeze": "`axes` must be resolvable to a constant",
        },
        "supported": ("Reciprocal", "Mod", "IsInf"),
    },
    "11": {
        # The opset guide states only the upper bound for 11.x; the lower bound is 10.x's.
        "opset": (9, 25),
        # Weak typing is gone: no BuilderFlag.FP16/BF16, precision comes from the ONNX file.
        "precision_flags": False,
        "restrictions": {
            "ScatterND": "`reduction` other than `none` not supported",
            "Squeeze": "`axes` must be resolvable to a constant",
            "Unsqueeze": "`axes` must be resolvable to a constant",
        },
        "supported": ("Reciprocal", "Mod", "IsInf"),
    },
}

# Every version routes ScatterElements with a reduction to the ScatterElements plugin (tensorrt-versions.md).
PLUGIN_RULES = {
    "ScatterElements": {"rule": "attribute", "attribute": "reduction", "allowed": ["none"], "severity": "plugin",
                        "why": "a reduction other than `none` is routed to the ScatterElements plugin"},
}

CONSTANT_PATTERNS = (
    (re.compile(r"^`(\w+)` (?:input )?must be an initializer$"), "initializer"),
    (re.compile(r"^`(\w+)` must be a constant tensor$"), "initializer"),
    (re.compile(r"^`(\w+)` must be (?:a build-time constant|resolvable to a constant)$"), "build_time"),
)
BELOW = re.compile(r"^`(\w+)` input must be less than (\d+)$")
ATTRIBUTE_EQUALS = re.compile(r"^`(\w+)` must be (\d+)$")
ATTRIBUTE_DEFAULT_ONLY = re.compile(r"^`(\w+)` is not supported$")
ATTRIBUTE_ONLY = re.compile(r"^`(\w+)` other than `(\w+)` (?:is )?not supported$")
FORBIDDEN_ATTRIBUTES = re.compile(r"^((?:`\w+`,? ?(?:and )?)+) attributes are unsupported$")
FIRST_OUTPUT_ONLY = re.compile(r"^(?:Only the first output `\w+` is supported|`\w+` output tensor unsupported)$")
IF_BRANCHES = re.compile(r"^Output tensors of the two conditional branches must have the same rank")
LOOP = re.compile(r"^(?:Scan output length cannot be dynamic|The shape of Loop carried dependencies)")


def parse_table(text: str) -> tuple[dict[str, dict], tuple[int, int]]:
    """Rows of the operator matrix as ``{op: {supported, types, restrictions}}``, and the opset range."""
    match = re.search(r"opset (\d+) to opset (\d+)", text)
    if not match:
        raise SystemExit("the table's opset range sentence was not found")
    operators = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or cells[1] not in ("Y", "N"):
            continue
        types = [t.strip() for t in cells[2].split(",") if t.strip()] if len(cells) > 2 else []
        operators[cells[0]] = {
            "supported": cells[1] == "Y",
            # The 10.1 table spells INT64 as "INF64" in the ConstantOfShape row.
            "types": ["INT64" if t == "INF64" else t for t in types],
            "restrictions": cells[3] if len(cells) > 3 else "",
        }
    return operators, (int(match.group(1)), int(match.group(2)))


def sentences(restrictions: str) -> list[str]:
    parts = re.split(r"<br\s*/?>|(?<=\.)\s+", restrictions)
    return [p.strip().rstrip(".").strip() for p in parts if p.strip().rstrip(".").strip()]


def _schema(op: str):
    try:
        return onnx.defs.get_schema(op)
    except onnx.defs.SchemaError:
        return None


def _default(schema, attribute: str):
    value = schema.attributes[attribute].default_value
    return onnx.helper.get_attribute_value(value) if value.name else None


def rule_of(op: str, sentence: str) -> dict | None:
    """The machine-checkable rule a restriction sentence states, or None when it is not one we check."""
    schema = _schema(op)
    inputs = {formal.name for formal in schema.inputs} if schema else set()
    attributes = set(schema.attributes) if schema else set()
    for pattern, level in CONSTANT_PATTERNS:
        match = pattern.match(sentence)
        if match and match.group(1) in inputs:
            return {"rule": "constant_input", "input": match.group(1), "level": level}
    if (match := BELOW.match(sentence)) and match.group(1) in inputs:
        return {"rule": "constant_input", "input": match.group(1), "level": "build_time", "below": int(match.group(2))}
    if (match := ATTRIBUTE_EQUALS.match(sentence)) and match.group(1) in attributes:
        return {"rule": "attribute", "attribute": match.group(1), "allowed": [int(match.group(2))], "severity": "error"}
    if (match := ATTRIBUTE_ONLY.match(sentence)) and match.group(1) in attributes:
        return {"rule": "attribute", "attribute": match.group(1), "allowed": [match.group(2)], "severity": "error"}
    if (match := ATTRIBUTE_DEFAULT_ONLY.match(sentence)) and match.group(1) in attributes:
        default = _default(schema, match.group(1))
        default = default.decode() if isinstance(default, bytes) else default
        return {"rule": "attribute", "attribute": match.group(1), "allowed": [default], "severity": "error"}
    if match := FORBIDDEN_ATTRIBUTES.match(sentence):
        names = re.findall(r"`(\w+)`", match.group(1))
        if set(names) <= attributes:
            return {"rule": "forbidden_attributes", "attributes": names}
    if FIRST_OUTPUT_ONLY.match(sentence):
        return {"rule": "first_output_only"}
    if IF_BRANCHES.match(sentence) and op == "If":
        return {"rule": "if_branches"}
    if LOOP.match(sentence) and op == "Loop":
        return {"rule": "loop_static"}
    return None


def operator_entry(op: str, row: dict) -> dict:
    checks, unchecked = [], []
    for sentence in sentences(row["restrictions"]):
        rule = rule_of(op, sentence)
        if rule is None:
            unchecked.append(sentence)
        elif rule not in checks:
            checks.append(rule)
    if op in PLUGIN_RULES:
        checks.append(PLUGIN_RULES[op])
    return {"supported": row["supported"], "types": row["types"], "restrictions": row["restrictions"],
            "checks": checks, "unchecked": unchecked}


def table_for(version: str, operators: dict[str, dict], opset: tuple[int, int]) -> dict:
    changes = LATER_RELEASES.get(version)
    rows = {op: dict(row) for op, row in operators.items()}
    precision_flags = True
    source = f"{TABLE_SOURCE}"
    if changes:
        opset = changes["opset"]
        precision_flags = changes["precision_flags"]
        for op, text in changes["restrictions"].items():
            rows[op]["restrictions"] = text
        for op in changes["supported"]:
            rows[op]["supported"] = True
        source = f"{TABLE_SOURCE}, with the rows {VERSIONS_SOURCE} documents as changed by {version}"
    return {
        "tensorrt": version,
        "source": source,
        "generated_by": "tools/make_trt_tables.py",
        "opset": {"min": opset[0], "max": opset[1]},
        "precision_flags": precision_flags,
        "operators": {op: operator_entry(op, row) for op, row in sorted(rows.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=REFERENCE / "tensorrt-10.1-onnx-operators.md")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "exportloss" / "trt")
    args = parser.parse_args()
    operators, opset = parse_table(args.table.read_text())
    for version in ("10.1", *LATER_RELEASES):
        path = args.out / f"tensorrt-{version}.json"
        path.write_text(json.dumps(table_for(version, operators, opset), indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
