"""Write ``exportloss/ort_cuda/cuda-kernels.json``, onnxruntime's CUDA kernel registrations as a table.

Sources, from one onnxruntime revision: ``onnxruntime/core/providers/cuda/cuda_execution_provider.cc`` (the
``ai.onnx`` and ``ai.onnx.ml`` kernels) and ``onnxruntime/contrib_ops/cuda/cuda_contrib_kernels.cc`` (the
contrib kernels: ``com.microsoft``, and a few more ``ai.onnx`` ones). Every kernel is named there by one macro
call (in the forward declarations and again in the ``BuildKernelCreateInfo<...>`` function table), for example::

    ONNX_OPERATOR_VERSIONED_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 7, 12, float, Add)
    ONNX_OPERATOR_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 13, Concat)
    ONNX_OPERATOR_VERSIONED_TWO_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 19, 20, uint8_t, float, DequantizeLinear)

which give the operator, the domain, the opset range (``since`` .. ``end``, open-ended without ``end``)
and, for typed kernels, the element types bound to the kernel's type parameters. The contrib file names
its kernels through local shorthands (``CUDA_MS_OP_TYPED_CLASS_NAME(1, float, FastGelu)``); the
``#define``s of the file itself are expanded first. Registrations inside ``#if`` blocks count as a build
with no optional feature has them: every preprocessor symbol undefined, so ``!defined(DISABLE_FLOAT8_TYPES)``
blocks count and ``ENABLE_TRAINING_OPS``, ``ORT_USE_NCCL`` or ``ENABLE_ATEN`` blocks do not. Untyped kernels
declare their type constraints in their own source files; the table marks them ``"types": null`` (not
checked).

Usage: ``python tools/make_ort_cuda_table.py --source PATH/cuda_execution_provider.cc
--source PATH/cuda_contrib_kernels.cc --revision "microsoft/onnxruntime@COMMIT (VERSION_NUMBER x.y.z)" [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

MACRO = re.compile(
    r"ONNX_OPERATOR_(?P<versioned>VERSIONED_)?(?P<count>TWO_|THREE_)?(?P<typed>TYPED_)?KERNEL_CLASS_NAME\("
    r"\s*kCudaExecutionProvider\s*,(?P<args>[^)]*)\)"
)
TYPE_COUNT = {None: 1, "TWO_": 2, "THREE_": 3}
DOMAINS = {"kOnnxDomain": "", "kOnnxDomainAlias": "", "kMLDomain": "ai.onnx.ml", "kMSDomain": "com.microsoft",
           "kPytorchAtenDomain": "org.pytorch.aten"}
CPP_TYPES = {
    "float": "FLOAT", "double": "DOUBLE", "double_t": "DOUBLE", "MLFloat16": "FLOAT16", "BFloat16": "BFLOAT16",
    "int8_t": "INT8", "int16_t": "INT16", "int32_t": "INT32", "int64_t": "INT64",
    "uint8_t": "UINT8", "uint16_t": "UINT16", "uint32_t": "UINT32", "uint64_t": "UINT64", "bool": "BOOL",
    "int64": "INT64", "string": "STRING", "Float8E4M3FN": "FLOAT8E4M3FN", "Float8E4M3FNUZ": "FLOAT8E4M3FNUZ",
    "Float8E5M2": "FLOAT8E5M2", "Float8E5M2FNUZ": "FLOAT8E5M2FNUZ", "Float4E2M1x2": "FLOAT4E2M1",
    "Int4x2": "INT4", "UInt4x2": "UINT4", "Int2x4": "INT2", "UInt2x4": "UINT2",
}
# Composite type tags (OneHot's ``int64_t_float_int64_t``) split on the C++ type names they join.
TYPE_TAG = re.compile(r"(" + "|".join(sorted(map(re.escape, CPP_TYPES), key=len, reverse=True)) + r")(?:_|$)")
DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(?P<name>\w+)\((?P<params>[^)]*)\)(?P<body>(?:[^\n]*\\\n)*[^\n]*)", re.M)
DIRECTIVE = re.compile(r"^[ \t]*#[ \t]*(?P<kind>ifdef|ifndef|if|elif|else|endif)\b(?P<expr>[^\n]*)$")


def element_types(tag: str) -> list[str]:
    parts = TYPE_TAG.findall(tag)
    if "_".join(parts) != tag:
        raise SystemExit(f"unknown kernel type tag {tag!r}")
    return [CPP_TYPES[p] for p in parts]


def _condition(kind: str, expr: str) -> bool:
    """A directive's condition with every preprocessor symbol undefined (a build with no optional feature)."""
    expr = expr.split("//")[0].strip()
    if kind == "ifdef":
        return False
    if kind == "ifndef":
        return True
    python = re.sub(r"defined\s*\(\s*\w+\s*\)|defined\s+\w+", "False", expr)
    python = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: m.group(0) if m.group(0) in ("False", "and", "or", "not") else "0", python)
    python = python.replace("&&", " and ").replace("||", " or ").replace("!", " not ").replace(" not =", "!=")
    if not re.fullmatch(r"[\w\s()<>=!]*", python):
        raise SystemExit(f"cannot evaluate the preprocessor condition {expr!r}")
    return bool(eval(python, {"__builtins__": {}}))  # only literals, comparisons and boolean operators are left


def active_lines(text: str) -> str:
    """``text`` without the lines that ``#if`` blocks exclude (see :func:`_condition`)."""
    kept, stack = [], []  # stack entries: [parent active, a branch was taken, this branch active]
    for line in text.splitlines():
        directive = DIRECTIVE.match(line)
        active = all(entry[2] for entry in stack)
        if directive is None:
            if active:
                kept.append(line)
            continue
        kind = directive.group("kind")
        if kind in ("if", "ifdef", "ifndef"):
            taken = _condition(kind, directive.group("expr"))
            stack.append([active, taken, taken])
        elif kind == "elif":
            entry = stack[-1]
            entry[2] = not entry[1] and _condition("if", directive.group("expr"))
            entry[1] = entry[1] or entry[2]
        elif kind == "else":
            entry = stack[-1]
            entry[2] = not entry[1]
            entry[1] = True
        else:
            stack.pop()
    return "\n".join(kept)


def expand_local_macros(text: str) -> str:
    """Expand the file's own function-like ``#define``s whose bodies name a CUDA kernel class."""
    defines = [d for d in DEFINE.finditer(text) if "kCudaExecutionProvider" in d.group("body")]
    text = DEFINE.sub("", text)
    for define in defines:
        body = define.group("body").replace("\\\n", " ").strip()
        params = [p.strip() for p in define.group("params").split(",")]

        def substitute(match: re.Match, params=params, body=body) -> str:
            values = dict(zip(params, (a.strip() for a in match.group(1).split(","))))
            return re.sub(r"\b\w+\b", lambda m: values.get(m.group(0), m.group(0)), body)

        text = re.sub(rf"\b{define.group('name')}\(([^()]*)\)", substitute, text)
    return text


def parse_registrations(text: str) -> list[dict]:
    """Every distinct kernel named in ``text``: ``{op, domain, since, end, types}`` (``end`` None = open)."""
    text = expand_local_macros(active_lines(re.sub(r"//[^\n]*", "", text)))
    kernels: dict[tuple, dict] = {}
    for match in MACRO.finditer(text):
        args = [a.strip() for a in match.group("args").split(",")]
        domain, args = args[0], args[1:]
        if domain not in DOMAINS:
            raise SystemExit(f"unknown domain {domain} in {match.group(0)}")
        since = int(args.pop(0))
        end = int(args.pop(0)) if match.group("versioned") else None
        types = None
        if match.group("typed"):
            count = TYPE_COUNT[match.group("count")]
            types = [t for tag in args[:count] for t in element_types(tag)]
            args = args[count:]
        (op,) = args
        key = (DOMAINS[domain], op, since, end, tuple(types or ()))
        kernels[key] = {"op": op, "domain": DOMAINS[domain], "since": since, "end": end, "types": types}
    return [kernels[key] for key in sorted(kernels, key=lambda k: (k[0], k[1], k[2], k[3] or 10**6, k[4]))]


def table(kernels: list[dict], revision: str, sources: list[str]) -> dict:
    """Kernels grouped per operator and opset range, typed registrations of one range merged into one row."""
    operators: dict[str, list[dict]] = {}
    for kernel in kernels:
        key = kernel["op"] if not kernel["domain"] else f"{kernel['domain']}::{kernel['op']}"
        rows = operators.setdefault(key, [])
        row = next((r for r in rows if (r["since"], r["end"]) == (kernel["since"], kernel["end"])), None)
        if row is None:
            row = {"since": kernel["since"], "end": kernel["end"], "types": None}
            rows.append(row)
        if kernel["types"] is not None:
            row["types"] = sorted({*(row["types"] or []), "_".join(kernel["types"])})
    return {
        "provider": "CUDAExecutionProvider",
        "source": f"{revision}: {', '.join(sources)}",
        "generated_by": "tools/make_ort_cuda_table.py",
        "keys": "operator name for the default (ai.onnx) domain, 'domain::operator' for the others",
        "types_note": "types: element types of typed registrations (a composite tag such as OneHot's "
                      "INT64_FLOAT_INT64 lists its type parameters in order); null: an untyped registration "
                      "whose constraints live in the kernel's own file (not checked)",
        "operators": dict(sorted(operators.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, action="append", required=True,
                        help="cuda_execution_provider.cc, cuda_contrib_kernels.cc of one onnxruntime revision")
    parser.add_argument("--revision", required=True, help="which onnxruntime revision the sources are, for the header")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "exportloss" / "ort_cuda" / "cuda-kernels.json")
    args = parser.parse_args()
    kernels = [k for source in args.source for k in parse_registrations(source.read_text())]
    sources = {"cuda_execution_provider.cc": "onnxruntime/core/providers/cuda/cuda_execution_provider.cc",
               "cuda_contrib_kernels.cc": "onnxruntime/contrib_ops/cuda/cuda_contrib_kernels.cc"}
    args.out.write_text(json.dumps(table(kernels, args.revision, [sources.get(s.name, s.name) for s in args.source]),
                                   indent=1) + "\n")
    print(f"wrote {args.out}: {len(kernels)} kernels")


if __name__ == "__main__":
    main()
