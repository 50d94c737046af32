"""The sample tensors of ``export_scripts/export_with_samples.py`` are right for every catalog graph.

A C++ (or any other) service checks its own onnxruntime run against ``test_data_set_0/*.pb``, comparing
shapes first; so each file must hold exactly the graph's shape (0-d outputs, the reduced losses, stay 0-d)
and dtype, and the expected outputs must be what onnxruntime computes from the saved inputs. This reads every
file back for the whole catalog, from the committed models/ (no export, no C++ needed).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from exportloss import catalog
from exportloss.verify import VerifyRow, compare

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


def _load_script():
    spec = importlib.util.spec_from_file_location("export_with_samples", ROOT / "export_scripts" / "export_with_samples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


samples_script = _load_script()


def _read_pb(path: Path) -> tuple[str, np.ndarray]:
    tensor = onnx.load_tensor(str(path))
    return tensor.name, numpy_helper.to_array(tensor)


@pytest.mark.parametrize("name", catalog.names())
def test_sample_tensors_read_back_with_the_graphs_shapes_dtypes_and_outputs(name, tmp_path):
    out = tmp_path / name
    model_path, entry = samples_script.prepare_graph(catalog.get(name), out, MODELS)
    samples = samples_script.write_samples(entry, model_path, out)
    model = onnx.load(str(model_path))
    data = samples.data_dir
    assert sorted(p.name for p in data.iterdir()) == sorted(
        [f"input_{i}.pb" for i in range(len(entry.inputs))] + [f"output_{i}.pb" for i in range(len(entry.outputs))])

    inputs = {}
    for i, (spec, declared) in enumerate(zip(entry.inputs, model.graph.input)):
        stored_name, array = _read_pb(data / f"input_{i}.pb")
        assert stored_name == spec.name == declared.name
        assert array.shape == spec.resolve(entry.sizes) == tuple(d.dim_value for d in declared.type.tensor_type.shape.dim)
        assert array.dtype == np.dtype(spec.dtype)
        np.testing.assert_array_equal(array, samples.inputs[spec.name])
        inputs[spec.name] = array

    expected = []
    for i, (spec, (shape, dtype)) in enumerate(zip(entry.outputs, samples_script.output_types(model))):
        stored_name, array = _read_pb(data / f"output_{i}.pb")
        assert stored_name == spec.name
        assert array.shape == spec.resolve(entry.sizes) == shape, f"{spec.name}: stored {array.shape}, graph {shape}"
        assert array.dtype == np.dtype(spec.dtype) == dtype
        expected.append(array)

    with np.load(out / f"{name}.samples.npz") as npz:
        for spec, array in zip(entry.outputs, expected):
            stored = npz[f"expected.{spec.name}"]
            assert stored.shape == array.shape and stored.dtype == array.dtype
            np.testing.assert_array_equal(stored, array)

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    got = session.run(entry.output_names, inputs)
    for actual, array in zip(got, expected):
        assert actual.shape == array.shape and actual.dtype == array.dtype
    row = VerifyRow(name, "ort-cpu", "fp32", "CPUExecutionProvider")
    compare(entry, entry.tolerance, row, catalog.Case("sample", inputs), "read-back", got, expected)
    assert row.passed, row.failures
    assert (out / "tolerance.txt").read_text().split() == [str(entry.tolerance.atol), str(entry.tolerance.rtol)]


def test_scalar_outputs_stay_zero_dimensional(tmp_path):
    """The bug this guards against: np.ascontiguousarray turned a 0-d loss into shape [1]."""
    model_path, entry = samples_script.prepare_graph(catalog.get("ciou_loss"), tmp_path, MODELS)
    samples = samples_script.write_samples(entry, model_path, tmp_path)
    _, loss = _read_pb(samples.data_dir / "output_0.pb")
    assert loss.shape == () and loss.dtype == np.float32


def test_cpp_check_setup_errors_are_one_line(tmp_path):
    with pytest.raises(samples_script.SetupError, match="ONNXRUNTIME_ROOT is not set"):
        samples_script.onnxruntime_root(None)
    with pytest.raises(samples_script.SetupError, match="no include/onnxruntime_c_api.h"):
        samples_script.onnxruntime_root(str(tmp_path))
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "onnxruntime_c_api.h").write_text("")
    with pytest.raises(samples_script.SetupError, match="no lib/ folder"):
        samples_script.onnxruntime_root(str(tmp_path))
    (tmp_path / "lib").mkdir()
    with pytest.raises(samples_script.SetupError, match="no libonnxruntime.so"):
        samples_script.onnxruntime_root(str(tmp_path))


def test_a_lib_folder_with_only_the_wheels_library_gets_the_two_links(tmp_path):
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "onnxruntime_c_api.h").write_text("")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libonnxruntime.so.1.32.0").write_bytes(b"")
    samples_script.onnxruntime_root(str(tmp_path))
    assert (lib / "libonnxruntime.so.1").readlink() == Path("libonnxruntime.so.1.32.0")
    assert (lib / "libonnxruntime.so").readlink() == Path("libonnxruntime.so.1")
    samples_script.onnxruntime_root(str(tmp_path))  # a second time finds them
