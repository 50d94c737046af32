"""Issue 22's command-line findings, each by its reproduction: one line, the documented exit status, nothing lost.

Exit statuses (README, "Exit codes"): 0 success, 1 a failed check, 2 bad usage or unusable input, 3 only a bug,
130 interrupted.
"""

from __future__ import annotations

import shutil

import onnx
import pytest

from exportloss import catalog
from exportloss.cli import main
from exportloss.model_files import METADATA_SIZES, load_model, write_model

from test_cli_and_errors import one_error_line


@pytest.fixture
def models(tmp_path, exported):
    """A models directory with aligned_iou exported into it (copied with its manifest record)."""
    directory = tmp_path / "models"
    directory.mkdir()
    source = exported("aligned_iou")
    shutil.copy(source, directory / "aligned_iou.onnx")
    shutil.copy(source.parent / "manifest.json", directory / "manifest.json")
    return directory


# --- finding 5: contradictions are errors ---------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--size", "boxes1=10", "--size", "boxes1=20"], "--size boxes1 given twice with different values (--size boxes1=10 and --size boxes1=20)"),
    (["--shape", "boxes1=2x10x4", "--shape", "boxes1=2x20x4"], "--shape boxes1 given twice with different values"),
])
def test_a_size_or_shape_given_twice_differently_is_an_error(capsys, tmp_path, argv, message):
    assert main(["export", "pairwise_iou", *argv, "-o", str(tmp_path)]) == 2
    assert message in one_error_line(capsys, "export")
    assert not list(tmp_path.iterdir())


# --- finding 9: exit 3 only for bugs ----------------------------------------------------------------------

@pytest.mark.parametrize("size, message", [
    ("classes=²", "--size expects NAME=N with a non-negative integer"),
    ("classes=٣", "--size expects NAME=N with a non-negative integer"),
    ("classes=1000000000", "needs 238.4 GiB for its tensors alone"),
])
def test_sizes_that_are_not_ascii_numbers_or_do_not_fit_in_memory_exit_2(capsys, tmp_path, monkeypatch, size, message):
    monkeypatch.setattr("exportloss.export.available_memory", lambda: 16 << 30)
    assert main(["export", "arcface_loss", "--size", size, "-o", str(tmp_path)]) == 2
    assert message in one_error_line(capsys, "export")


def test_pairwise_sizes_beyond_memory_exit_2_before_allocating(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("exportloss.export.available_memory", lambda: 16 << 30)
    assert main(["export", "pairwise_iou", "--size", "boxes1=1000000000", "-o", str(tmp_path)]) == 2
    line = one_error_line(capsys, "export")
    assert "graph 'pairwise_iou' at sizes batch=2, boxes1=1000000000, boxes2=96 needs 745.1 GiB" in line


@pytest.mark.parametrize("stamp", ["5", "[1, 2]", '"classes"', '{"boxes": "a"}'])
def test_a_sizes_stamp_that_is_not_sizes_is_refused_in_one_line(capsys, tmp_path, exported, stamp):
    """A stamp of ``5`` reached exit 3; a bad value quoted ``--size`` arguments the user never typed (finding 21)."""
    model = onnx.load(str(exported("aligned_iou")))
    onnx.helper.set_model_props(model, {"exportloss.graph": "aligned_iou", "exportloss.exporter": "dynamo", METADATA_SIZES: stamp})
    path = tmp_path / "aligned_iou.onnx"
    path.write_bytes(model.SerializeToString())
    assert main(["verify", str(path)]) == 2
    line = one_error_line(capsys, "verify")
    assert f"{path}: its sizes or options do not fit catalog graph 'aligned_iou'" in line and "--size" not in line


def test_list_readme_on_a_binary_file_or_one_without_markers_exits_2(capsys, tmp_path):
    binary = tmp_path / "binary.md"
    binary.write_bytes(b"\xff\xfe\x00binary")
    assert main(["list", "--readme", str(binary)]) == 2
    assert "not a UTF-8 text file" in one_error_line(capsys, "list")
    plain = tmp_path / "plain.md"
    plain.write_text("# no tables here\n")
    assert main(["list", "--readme", str(plain)]) == 2  # finding 22: it said "up to date"
    assert "no catalog-table markers" in one_error_line(capsys, "list")
    assert plain.read_text() == "# no tables here\n"


# Findings 9 (`bench --from-json` on null), 21 (foreign JSON) and 22 (`--json` beside `--from-json`, a negative
# `--time-limit`) are pinned in test_bench.py.


# --- finding 11: a killed export's temporary files are removed by the next ---------------------------

def test_the_next_export_removes_temporary_files_a_killed_export_left(tmp_path):
    stale = [tmp_path / ".aligned_iou.onnx.0123456789ab.tmp", tmp_path / ".manifest.json.ba9876543210.tmp"]
    keep = [tmp_path / "notes.tmp", tmp_path / ".other.0123456789ab.tmp"]
    for path in (*stale, *keep):
        path.write_bytes(b"partial")
    write_model(tmp_path, {"name": "x", "file": "x.onnx"}, b"data", {})
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in keep)


# --- finding 12: missing files and directories are unusable input (2), not failed rows (1) --------------

def test_verify_a_name_without_its_file_or_with_a_mistyped_models_exits_2(capsys, models):
    assert main(["verify", "aligned_giou", "--models", str(models)]) == 2
    assert f"--models {models}: no aligned_giou.onnx; run `exportloss export aligned_giou`" in one_error_line(capsys, "verify")
    assert main(["verify", "aligned_iou", "--models", str(models) + "x"]) == 2
    assert f"--models {models}x: no such directory" in one_error_line(capsys, "verify")


# --- findings 8 and 13: verify runs exactly the bytes it checked -------------------------------------------

def test_verify_runs_the_model_it_checked_not_the_file_rewritten_since(models, monkeypatch):
    """Finding 8: load_model checked the bytes, the backend reopened the path; a rewrite in between gave a false
    FAIL (or a PASS for an unchecked file). Now the session runs the checked in-memory model."""
    from exportloss import verify as verify_module
    from exportloss.backends.ort import OrtBackend

    path = models / "aligned_iou.onnx"
    model, entry = load_model(path)
    path.write_bytes(b"rewritten by a concurrent export")
    rows = verify_module._verify_loaded(path, model, entry, [OrtBackend.cpu()], catalog.VERIFICATION_SEED, None)
    assert rows and all(row.passed for row in rows), [row.failures for row in rows]


def test_a_catalog_model_resaved_with_external_data_is_refused_in_one_line(capsys, models):
    """Finding 13: it passed load_model, then failed in onnxruntime with exit 1."""
    path = models / "aligned_iou.onnx"
    model = onnx.load(str(path))
    (models / "manifest.json").unlink()
    from onnx.external_data_helper import convert_model_to_external_data

    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="aligned_iou.data",
                                   size_threshold=0, convert_attribute=True)
    onnx.save_model(model, str(path))
    assert (models / "aligned_iou.data").exists()
    assert main(["verify", str(path)]) == 2
    assert f"{path}: keeps tensors in external data (aligned_iou.data)" in one_error_line(capsys, "verify")


# --- finding 14: every argument is checked before the first graph is written ------------------------------

def test_export_all_with_tile_rows_fails_before_writing_anything(capsys, tmp_path):
    assert main(["export", "--all", "--tile-rows", "8", "-o", str(tmp_path / "out")]) == 2
    assert "--tile-rows applies to pairwise_iou" in one_error_line(capsys, "export")
    assert not (tmp_path / "out").exists()


# --- finding 16: verify --json is checked before the run --------------------------------------------------

def test_verify_json_onto_a_directory_fails_before_the_run(capsys, models, tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    assert main(["verify", "aligned_iou", "--models", str(models), "--json", str(target)]) == 2
    line = one_error_line(capsys, "verify")
    assert f"--json {target}: cannot write there (is a directory)" in line and ".tmp" not in line


# --- finding 17: an unusable lock file is named, before the export ------------------------------------------

def test_an_unusable_lock_file_is_named_before_the_export(capsys, tmp_path, monkeypatch):
    import exportloss.export

    (tmp_path / ".manifest.json.lock").mkdir()
    monkeypatch.setattr(exportloss.export, "export_model", lambda *a, **k: pytest.fail("exported before checking the lock"))
    assert main(["export", "aligned_iou", "-o", str(tmp_path)]) == 2
    line = one_error_line(capsys, "export")
    assert f"{tmp_path / '.manifest.json.lock'}: the manifest's lock file cannot be used" in line


# --- finding 19: -o "" ------------------------------------------------------------------------------------

def test_an_empty_output_directory_is_an_error(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "aligned_iou", "-o", ""]) == 2
    assert "-o: expected a directory; got ''" in one_error_line(capsys, "export")
    assert not list(tmp_path.iterdir())


# --- finding 20: Ctrl-C ---------------------------------------------------------------------------------------

def test_ctrl_c_is_one_line_with_status_130(capsys, tmp_path, monkeypatch):
    import exportloss.export

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(exportloss.export, "export_model", interrupted)
    assert main(["export", "aligned_iou", "-o", str(tmp_path)]) == 130
    assert one_error_line(capsys, "export") == "exportloss export: error: interrupted"
    assert not list(tmp_path.glob("*.onnx"))


# --- finding 21: messages name what the user gave ------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("arcface_loss", "graph 'arcface_loss' cannot be built at sizes batch=32, dim=64, classes=0: num_classes must be >= 2; got 0"),
    ("center_loss", "graph 'center_loss' cannot be built at sizes batch=64, classes=0, dim=32: num_classes must be >= 1; got 0"),
])
def test_a_size_the_module_rejects_is_named_with_the_module_argument_alone(capsys, tmp_path, name, message):
    assert main(["export", name, "--size", "classes=0", "-o", str(tmp_path)]) == 2
    line = one_error_line(capsys, "export")
    assert message in line and "feat_dim" not in line


# --- finding 15: the advertised opsets are the ones that work ---------------------------------------------------

@pytest.mark.parametrize("opset", ["7", "8", "12"])
def test_torchscript_opsets_below_13_are_refused_up_front(capsys, tmp_path, opset):
    """``--exporter torchscript --opset 7/8`` were inside the advertised 7-20 and failed with a checker message."""
    assert main(["export", "center_update", "--exporter", "torchscript", "--opset", opset, "-o", str(tmp_path)]) == 2
    assert f"--opset {opset}: the torchscript exporter writes opsets 13 to 20" in one_error_line(capsys, "export")


@pytest.mark.parametrize("name", ["center_update", "focal_loss", "rotated_pairwise_iou"])
def test_torchscript_exports_at_its_lowest_advertised_opset(tmp_path, name):
    """The graphs that failed below 13 (bfloat16 Cast, shape inference, an exporter crash) export and check at 13."""
    from exportloss.export import TORCHSCRIPT_MIN_OPSET, export_graph

    assert export_graph(catalog.get(name), tmp_path, "torchscript", TORCHSCRIPT_MIN_OPSET).opset == 13
