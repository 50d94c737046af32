"""Example (b): catalog graphs with sample inputs and expected outputs beside them, so that a C++ (or any
other) service can check its own onnxruntime run of a graph; optionally that check, in C++, on each.

For each catalog graph NAME (default ``match_metrics``; ``--all`` for the whole catalog) it writes into
``OUT/NAME`` (``OUT`` defaults to ``build/examples``):

* ``NAME.onnx``: the graph (exported here; with ``--models DIR`` the already exported ``DIR/NAME.onnx``,
  checked against its manifest, is used instead);
* ``NAME.samples.npz``: ``input.<name>`` and ``expected.<name>`` arrays;
* ``test_data_set_0/input_<i>.pb`` and ``output_<i>.pb``: the same tensors as ONNX TensorProto files
  (the layout of ONNX's backend test data, readable by ``onnx.numpy_helper`` and by
  ``export_scripts/cpp``), ``<i>`` in the graph's input and output order, each with exactly the graph's
  shape and dtype (0-d outputs such as the reduced losses stay 0-d);
* ``tolerance.txt``: ``atol rtol`` of the catalog entry.

The expected outputs are the float64 eager reference on fresh seeded inputs (not the export example),
cast to the graph's output dtypes; the script checks onnxruntime (Python) against them before writing.

The C++ check (``export_scripts/cpp``, onnxruntime's C API) is built once with CMake into
``OUT/cpp-build`` and run on every graph when ``ONNXRUNTIME_ROOT`` names a folder with onnxruntime's
headers in ``include/`` and its library in ``lib/``: an onnxruntime release archive, or the release's
``include/`` beside the ``libonnxruntime.so.1.x.y`` that the ``onnxruntime`` wheel ships (the script then
adds the two links that library needs: ``libonnxruntime.so`` for CMake and ``libonnxruntime.so.1``, its
soname, for the loader). Without ``ONNXRUNTIME_ROOT`` it says so and skips the C++ step; with ``--cpp``
(``make cpp-check``) that, and anything else missing, is an error of one line (exit 2). Exit status: 0 when
every check passed, 1 when an output was out of tolerance, as ``exportloss verify``.

    .venv/bin/python export_scripts/export_with_samples.py [NAME ...|--all] [--models models] [--cpp] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from exportloss import catalog
from exportloss.export import export_graph
from exportloss.model_files import ModelFileError
from exportloss.verify import VerifyRow, compare, load_catalog_model, reference_outputs

CPP_DIR = Path(__file__).resolve().parent / "cpp"
C_API_HEADER = "onnxruntime_c_api.h"
HEADER_DIRS = ("include", "include/onnxruntime", "include/onnxruntime/core/session")
"""Where a release archive (``include/``) and a source checkout (``include/onnxruntime/core/session``) keep it."""
WHEEL_LIBRARY = re.compile(r"libonnxruntime\.so\.1\.\d+\.\d+$")
SONAME = "libonnxruntime.so.1"


class SetupError(Exception):
    """Something the C++ check needs is missing; the message is one line saying what."""


@dataclass(frozen=True)
class Samples:
    model: Path
    data_dir: Path
    inputs: dict[str, np.ndarray]
    expected: list[np.ndarray]


def output_types(model: onnx.ModelProto) -> list[tuple[tuple[int, ...], np.dtype]]:
    """The static shape and numpy dtype of each graph output, as the ONNX file declares them."""
    return [(tuple(d.dim_value for d in o.type.tensor_type.shape.dim),
             np.dtype(onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)))
            for o in model.graph.output]


def write_samples(entry: catalog.GraphEntry, model_path: Path, out: Path) -> Samples:
    """Draw one fresh case, compute the expected outputs, check onnxruntime against them, write the files."""
    case = entry.verification_cases(n_random=1)[0]
    declared = output_types(onnx.load(str(model_path)))
    expected = [value.astype(dtype) for value, (_, dtype) in zip(reference_outputs(entry, entry.build().eval(), case.inputs), declared)]
    for name, value, (shape, _) in zip(entry.output_names, expected, declared):
        if value.shape != shape:  # an exportloss bug: the reference and the graph disagree on a shape
            raise RuntimeError(f"{entry.name}: reference output {name} has shape {list(value.shape)}, the graph {list(shape)}")

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    row = VerifyRow(entry.name, "ort-cpu", "fp32", "CPUExecutionProvider")
    compare(entry, entry.tolerance, row, case, "sample", session.run(entry.output_names, case.inputs), expected)
    if not row.passed:
        raise RuntimeError(f"{entry.name}: onnxruntime does not reproduce the expected outputs: {row.failures}")

    np.savez(out / f"{entry.name}.samples.npz",
             **{f"input.{k}": v for k, v in case.inputs.items()},
             **{f"expected.{k}": v for k, v in zip(entry.output_names, expected)})
    data_dir = out / "test_data_set_0"
    data_dir.mkdir(exist_ok=True)
    for prefix, names, arrays in (("input", entry.input_names, [case.inputs[n] for n in entry.input_names]),
                                  ("output", entry.output_names, expected)):
        for i, (name, array) in enumerate(zip(names, arrays)):
            # from_array writes the array's own shape (0-d included) and C-order bytes whatever its strides
            (data_dir / f"{prefix}_{i}.pb").write_bytes(numpy_helper.from_array(array, name).SerializeToString())
    (out / "tolerance.txt").write_text(f"{entry.tolerance.atol} {entry.tolerance.rtol}\n")
    print(f"{entry.name}: wrote {out}/ ({len(entry.inputs)} inputs, {len(expected)} outputs; "
          f"onnxruntime max abs err {row.max_abs:.2e})")
    return Samples(model_path, data_dir, dict(case.inputs), expected)


def prepare_graph(entry: catalog.GraphEntry, out: Path, models: Path | None) -> tuple[Path, catalog.GraphEntry]:
    """``out/NAME.onnx`` and the entry at its sizes: exported here, or copied from ``models`` after the
    manifest, stamp and interface checks."""
    out.mkdir(parents=True, exist_ok=True)
    if models is None:
        return export_graph(entry, out).path, entry
    source = models / f"{entry.name}.onnx"
    try:
        _, entry = load_catalog_model(source, entry)
    except ModelFileError as err:
        raise SetupError(str(err)) from None
    target = out / source.name
    shutil.copyfile(source, target)
    return target, entry


def python_run_times(model: Path, inputs: dict[str, np.ndarray], runs: int) -> list[float]:
    """Seconds per run in Python onnxruntime with the C++ check's session settings (1 intra-op thread, ORT_ENABLE_ALL)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    session.run(None, inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, inputs)
        times.append(time.perf_counter() - start)
    return times


# --- the C++ check -------------------------------------------------------------------------------------

def onnxruntime_root(value: str | None) -> Path:
    """The checked ``ONNXRUNTIME_ROOT``: headers found, the library linked as CMake and the loader need it."""
    if not value:
        raise SetupError("ONNXRUNTIME_ROOT is not set: point it to a folder with onnxruntime's include/ and lib/ "
                         "(README, 'Run a graph from C++')")
    root = Path(value).expanduser().resolve()
    if not root.is_dir():
        raise SetupError(f"ONNXRUNTIME_ROOT={value}: not a folder")
    if not any((root / d / C_API_HEADER).is_file() for d in HEADER_DIRS):
        raise SetupError(f"ONNXRUNTIME_ROOT={value}: no include/{C_API_HEADER}; copy include/ from the "
                         f"onnxruntime-linux-x64-<version>.tgz release of your library's version (or older)")
    link_wheel_library(root)
    return root


def link_wheel_library(root: Path) -> None:
    """Accept a ``lib/`` holding only the wheel's ``libonnxruntime.so.1.x.y``: add ``libonnxruntime.so`` (the
    name CMake's ``find_library(onnxruntime)`` and ``-lonnxruntime`` look for) and ``libonnxruntime.so.1``
    (the library's soname, the file the loader looks for at run time), as the release archives have them."""
    lib = next((root / d for d in ("lib", "lib64") if (root / d).is_dir()), None)
    if lib is None:
        raise SetupError(f"ONNXRUNTIME_ROOT={root}: no lib/ folder with libonnxruntime.so")
    if (lib / "libonnxruntime.so").exists() and (lib / SONAME).exists():
        return
    versioned = sorted(p.name for p in lib.iterdir() if WHEEL_LIBRARY.match(p.name))
    if len(versioned) != 1:
        found = f"several versions ({', '.join(versioned)})" if versioned else "no libonnxruntime.so* file"
        raise SetupError(f"{lib}: {found}; put one libonnxruntime.so.1.x.y there (the onnxruntime wheel's "
                         f"onnxruntime/capi/ has it)")
    links = [(lib / SONAME, versioned[0]), (lib / "libonnxruntime.so", SONAME)]
    try:
        for link, target in links:
            if not link.exists():
                link.symlink_to(target)
    except OSError as err:
        commands = " && ".join(f"ln -s {target} {link}" for link, target in links)
        raise SetupError(f"{lib} is not writable ({err.strerror}); link the library yourself: {commands}") from None
    print(f"linked {lib}/libonnxruntime.so -> {SONAME} -> {versioned[0]} (CMake links the first, the loader "
          f"opens the second)")


def build_cpp_check(root: Path, build: Path) -> Path:
    """Configure and build ``export_scripts/cpp`` once; returns the ``check_outputs`` executable."""
    for tool in ("cmake", "c++"):
        if not shutil.which(tool):
            raise SetupError(f"{tool} is not installed; the C++ check needs CMake and a C++17 compiler")
    for command in (["cmake", "-S", str(CPP_DIR), "-B", str(build), f"-DONNXRUNTIME_ROOT={root}",
                     "-DCMAKE_BUILD_TYPE=Release"],
                    ["cmake", "--build", str(build)]):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            raise SetupError(f"`{' '.join(command)}` failed (output above)")
    return build / "check_outputs"


def run_cpp_check(executable: Path, samples: Samples, entry: catalog.GraphEntry, runs: int) -> int:
    command = [str(executable), str(samples.model), str(samples.data_dir), str(entry.tolerance.atol),
               str(entry.tolerance.rtol)] + (["--runs", str(runs)] if runs else [])
    print("$", " ".join(command), flush=True)
    return subprocess.run(command).returncode


def _per_run(times: list[float]) -> str:
    return f"median {_duration(float(np.median(times)))}, min {_duration(min(times))} over {len(times)} runs"


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="catalog graphs (default: match_metrics)")
    parser.add_argument("--all", action="store_true", help="every catalog graph")
    parser.add_argument("-o", "--output", default="build/examples", help="output folder, one subfolder per graph "
                        "(default: build/examples)")
    parser.add_argument("--models", type=Path, help="take the graphs from this folder of exported models "
                        "(as `exportloss export --all` writes it) instead of exporting them")
    parser.add_argument("--cpp", action="store_true", help="the C++ check is required: fail (exit 2) in one line "
                        "when ONNXRUNTIME_ROOT, CMake or a compiler is missing")
    parser.add_argument("--runs", type=int, default=0, help="also time N runs per graph, in Python onnxruntime "
                        "and in C++ (same session settings)")
    args = parser.parse_args(argv)
    if args.all and args.names:
        parser.error("give graph names or --all, not both")
    out = Path(args.output)
    try:
        entries = catalog.resolve(args.names or ["match_metrics"], args.all)
        root = None
        if args.cpp or os.environ.get("ONNXRUNTIME_ROOT"):
            root = onnxruntime_root(os.environ.get("ONNXRUNTIME_ROOT"))
        else:
            print("skipping the C++ check: set ONNXRUNTIME_ROOT to a folder with onnxruntime's include/ and lib/ "
                  "(README, 'Run a graph from C++') to build export_scripts/cpp and run it on these files")
        executable = build_cpp_check(root, out / "cpp-build") if root else None
        failed = []
        for entry in entries:
            model, entry = prepare_graph(entry, out / entry.name, args.models)
            samples = write_samples(entry, model, out / entry.name)
            if args.runs:
                print(f"{entry.name}: Python onnxruntime per run: "
                      f"{_per_run(python_run_times(samples.model, samples.inputs, args.runs))}")
            if executable and run_cpp_check(executable, samples, entry, args.runs) != 0:
                failed.append(entry.name)
    except (SetupError, catalog.UnknownGraphError) as err:
        print(f"export_with_samples.py: error: {err}", file=sys.stderr)
        return 2
    if executable:
        print(f"C++ check: {len(entries) - len(failed)} of {len(entries)} graphs pass"
              + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
