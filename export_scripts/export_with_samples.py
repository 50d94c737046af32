"""Example (b): export a loss/metric graph with sample inputs and expected outputs beside it, so that
a C++ (or any other) service can check its own onnxruntime run of the graph.

Writes, for catalog graph NAME (default ``match_metrics``) into ``OUT`` (default ``build/examples/NAME``):

* ``NAME.onnx``: the graph (single file, dynamo exporter, opset 18);
* ``NAME.samples.npz``: ``input.<name>`` and ``expected.<name>`` arrays;
* ``test_data_set_0/input_<i>.pb`` and ``output_<i>.pb``: the same tensors as ONNX TensorProto files
  (the layout of ONNX's backend test data, readable by ``onnx.numpy_helper`` and by
  ``export_scripts/cpp``), ``<i>`` in the graph's input and output order;
* ``tolerance.txt``: ``atol rtol`` of the catalog entry.

The expected outputs are the float64 eager reference on fresh seeded inputs (not the export example),
cast to the graph's output dtypes; the script checks onnxruntime against them before writing. When
``ONNXRUNTIME_ROOT`` points to an onnxruntime release (``include/`` and ``lib/``, as in the
``onnxruntime-linux-x64-<version>.tgz`` archives), it also builds ``export_scripts/cpp`` with CMake and
runs it on the files; otherwise it says so and skips that step.

    .venv/bin/python export_scripts/export_with_samples.py [NAME] [-o OUT]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from exportloss import catalog
from exportloss.export import export_graph
from exportloss.verify import VerifyRow, compare, reference_outputs

CPP_DIR = Path(__file__).resolve().parent / "cpp"


def write_samples(entry: catalog.GraphEntry, model_path: Path, out: Path) -> tuple[dict, list[np.ndarray]]:
    """Draw one fresh case, compute the expected outputs, check onnxruntime against them, write the files."""
    case = entry.verification_cases(n_random=1)[0]
    model = onnx.load(str(model_path))
    output_dtypes = [onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type) for o in model.graph.output]
    expected = [value.astype(dtype) for value, dtype in zip(reference_outputs(entry, entry.build().eval(), case.inputs), output_dtypes)]

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    row = VerifyRow(entry.name, "ort-cpu", "fp32", "CPUExecutionProvider")
    compare(entry, entry.tolerance, row, case, "sample", session.run(entry.output_names, case.inputs), expected)
    if not row.passed:
        raise SystemExit(f"onnxruntime does not reproduce the expected outputs: {row.failures}")

    np.savez(out / f"{entry.name}.samples.npz",
             **{f"input.{k}": v for k, v in case.inputs.items()},
             **{f"expected.{k}": v for k, v in zip(entry.output_names, expected)})
    data_dir = out / "test_data_set_0"
    data_dir.mkdir(exist_ok=True)
    for prefix, names, arrays in (("input", [s.name for s in entry.inputs], [case.inputs[s.name] for s in entry.inputs]),
                                  ("output", entry.output_names, expected)):
        for i, (name, array) in enumerate(zip(names, arrays)):
            (data_dir / f"{prefix}_{i}.pb").write_bytes(numpy_helper.from_array(np.ascontiguousarray(array), name).SerializeToString())
    (out / "tolerance.txt").write_text(f"{entry.tolerance.atol} {entry.tolerance.rtol}\n")
    print(f"wrote {out}/{entry.name}.onnx, {entry.name}.samples.npz, test_data_set_0/ "
          f"({len(entry.inputs)} inputs, {len(expected)} outputs; onnxruntime max abs err {row.max_abs:.2e})")
    return case.inputs, expected


def run_cpp_check(model_path: Path, data_dir: Path, entry: catalog.GraphEntry) -> int:
    root = os.environ.get("ONNXRUNTIME_ROOT")
    if not root:
        print("skipping the C++ example: set ONNXRUNTIME_ROOT to an onnxruntime release directory "
              "(with include/ and lib/) to build export_scripts/cpp and run it on these files")
        return 0
    if not shutil.which("cmake"):
        print("skipping the C++ example: cmake is not installed")
        return 0
    build = model_path.parent / "cpp-build"
    subprocess.run(["cmake", "-S", str(CPP_DIR), "-B", str(build), f"-DONNXRUNTIME_ROOT={root}"], check=True)
    subprocess.run(["cmake", "--build", str(build)], check=True)
    command = [str(build / "check_outputs"), str(model_path), str(data_dir), str(entry.tolerance.atol), str(entry.tolerance.rtol)]
    print("$", " ".join(command))
    return subprocess.run(command).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="match_metrics", help="catalog graph (default: match_metrics)")
    parser.add_argument("-o", "--output", help="output directory (default: build/examples/NAME)")
    args = parser.parse_args(argv)
    entry = catalog.get(args.name)
    out = Path(args.output or f"build/examples/{entry.name}")
    model_path = export_graph(entry, out).path
    write_samples(entry, model_path, out)
    return run_cpp_check(model_path, out / "test_data_set_0", entry)


if __name__ == "__main__":
    sys.exit(main())
