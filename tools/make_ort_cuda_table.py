"""Write ``exportloss/ort_cuda/cuda-kernels.json``, onnxruntime's CUDA kernel registrations as a table.

Source: onnxruntime's ``onnxruntime/core/providers/cuda/cuda_execution_provider.cc``. Every kernel the
CUDA provider registers is named there by one macro call (in its forward declarations and again in the
``BuildKernelCreateInfo<...>`` function table), for example::

    ONNX_OPERATOR_VERSIONED_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 7, 12, float, Add)
    ONNX_OPERATOR_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 13, Concat)

which give the operator, the domain, the opset range (``since`` .. ``end``, open-ended without ``end``)
and, for typed kernels, the element type bound to the kernel's type parameter. Untyped kernels declare
their type constraints in their own source files; the table marks them ``"types": null`` (not checked).
Contrib kernels (``com.microsoft`` domain) are registered in another file and are not included: no
catalog graph uses them, and the check reports any node outside the table's domains.

The newest copy of that file reachable from this workplace is older than the onnxruntime-gpu 1.31.1 the
project ran on a GPU (``/work/shared/reference/gpu-runs.md``). That run placed every node of the committed
catalog on the CUDA provider except ``Atan``, so two kernels later releases added are listed in
``OBSERVED`` with the run as their source, for the element types it exercised.

Usage: ``python tools/make_ort_cuda_table.py --source PATH/cuda_execution_provider.cc
--revision "microsoft/onnxruntime@COMMIT" [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

MACRO = re.compile(
    r"ONNX_OPERATOR_(?P<versioned>VERSIONED_)?(?P<typed>TYPED_)?KERNEL_CLASS_NAME\(\s*kCudaExecutionProvider\s*,"
    r"(?P<args>[^)]*)\)"
)
DOMAINS = {"kOnnxDomain": "", "kMSDomain": "com.microsoft", "kOnnxDomainAlias": ""}
CPP_TYPES = {
    "float": "FLOAT", "double": "DOUBLE", "double_t": "DOUBLE", "MLFloat16": "FLOAT16", "BFloat16": "BFLOAT16",
    "int8_t": "INT8", "int16_t": "INT16", "int32_t": "INT32", "int64_t": "INT64",
    "uint8_t": "UINT8", "uint16_t": "UINT16", "uint32_t": "UINT32", "uint64_t": "UINT64", "bool": "BOOL",
}
# Composite type tags (OneHot's ``int64_t_float_int64_t``) split on the C++ type names they join.
TYPE_TAG = re.compile(r"(u?int(?:8|16|32|64)_t|double_t|double|float|MLFloat16|BFloat16|bool)(?:_|$)")


OBSERVED_SOURCE = "onnxruntime-gpu 1.31.1 CUDA provider, H200 run of the catalog (gpu-runs.md): no Memcpy around these nodes"
OBSERVED = (
    {"op": "ArgMax", "domain": "", "since": 13, "end": None, "types": ["FLOAT"]},
    {"op": "Sign", "domain": "", "since": 13, "end": None, "types": ["FLOAT"]},
)


def element_types(tag: str) -> list[str]:
    parts = TYPE_TAG.findall(tag)
    if "".join(p + "_" for p in parts).rstrip("_") != tag:
        raise SystemExit(f"unknown kernel type tag {tag!r}")
    return [CPP_TYPES[p] for p in parts]


def parse_registrations(text: str) -> list[dict]:
    """Every distinct kernel named in ``text``: ``{op, domain, since, end, types}`` (``end`` None = open)."""
    text = re.sub(r"//[^\n]*", "", text)
    kernels: dict[tuple, dict] = {}
    for match in MACRO.finditer(text):
        args = [a.strip() for a in match.group("args").split(",")]
        domain, args = args[0], args[1:]
        if domain not in DOMAINS:
            raise SystemExit(f"unknown domain {domain} in {match.group(0)}")
        since = int(args.pop(0))
        end = int(args.pop(0)) if match.group("versioned") else None
        types = element_types(args.pop(0)) if match.group("typed") else None
        (op,) = args
        key = (DOMAINS[domain], op, since, end, tuple(types or ()))
        kernels[key] = {"op": op, "domain": DOMAINS[domain], "since": since, "end": end, "types": types}
    return [kernels[key] for key in sorted(kernels, key=lambda k: (k[0], k[1], k[2], k[3] or 10**6, k[4]))]


def table(kernels: list[dict], revision: str) -> dict:
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
        if kernel.get("observed"):
            row["source"] = OBSERVED_SOURCE
    return {
        "provider": "CUDAExecutionProvider",
        "source": f"{revision}: onnxruntime/core/providers/cuda/cuda_execution_provider.cc",
        "generated_by": "tools/make_ort_cuda_table.py",
        "observed_rows": "rows with a 'source' key are not in that file but were observed on a later release",
        "types_note": "types: element types of typed registrations (a composite tag such as OneHot's "
                      "INT64_FLOAT_INT64 lists its type parameters in order); null: an untyped registration "
                      "whose constraints live in the kernel's own file (not checked)",
        "operators": dict(sorted(operators.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="cuda_execution_provider.cc of an onnxruntime checkout")
    parser.add_argument("--revision", required=True, help="which onnxruntime revision the source is, for the header")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "exportloss" / "ort_cuda" / "cuda-kernels.json")
    args = parser.parse_args()
    kernels = parse_registrations(args.source.read_text())
    known = {(k["domain"], k["op"], k["since"]) for k in kernels}
    kernels += [{**k, "observed": True} for k in OBSERVED if (k["domain"], k["op"], k["since"]) not in known]
    args.out.write_text(json.dumps(table(kernels, args.revision), indent=1) + "\n")
    print(f"wrote {args.out}: {len(kernels)} kernels")


if __name__ == "__main__":
    main()
