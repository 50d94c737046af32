"""Output files: the manifest under concurrent writers, file modes, sha256 checks, corrupt manifests, killed exports."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys

import pytest

from exportloss import catalog
from exportloss._files import atomic_write
from exportloss.cli import main
from exportloss.export import export_graph
from exportloss.model_files import MANIFEST, ModelFileError, ModelMismatchError, load_model, read_manifest, write_model

WRITERS, WRITES_EACH = 4, 25


def _write_many(directory: str, writer: int, start) -> None:
    start.wait()  # all writers begin together, so their read-modify-write cycles overlap
    for i in range(WRITES_EACH):
        name = f"w{writer}_{i}"
        write_model(directory, {"name": name, "file": f"{name}.onnx"}, f"model {name}".encode() * 100, {})


def test_concurrent_writers_keep_every_manifest_entry(tmp_path):
    """Without the lock, 4 processes x 25 read-modify-write cycles lose entries in every run."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(WRITERS)
    writers = [context.Process(target=_write_many, args=(str(tmp_path), w, start)) for w in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    graphs = read_manifest(tmp_path)["graphs"]
    assert len(graphs) == WRITERS * WRITES_EACH
    for record in graphs:
        data = (tmp_path / record["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["sha256"]
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_concurrent_cli_exports_into_one_directory(tmp_path):
    """The issue's reproduction: three `exportloss export` processes into one directory keep three entries."""
    names = ["aligned_iou", "aligned_giou", "aligned_diou"]
    processes = [
        subprocess.Popen([sys.executable, "-m", "exportloss", "export", name, "-o", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name in names
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()
    assert sorted(g["name"] for g in read_manifest(tmp_path)["graphs"]) == sorted(names)
    for name in names:
        load_model(tmp_path / f"{name}.onnx")  # sha256 matches the manifest, stamp and interface match the catalog


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.onnx", b"data")
        write_model(tmp_path, {"name": "b", "file": "b.onnx"}, b"data", {})
    finally:
        os.umask(old)
    for name in ("a.onnx", "b.onnx", MANIFEST):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "x.bin"
    atomic_write(path, b"old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


@pytest.mark.parametrize("text", ["{\n", "[]", '{"graphs": [{"name": "x"}]}', "\xff"])
def test_corrupt_manifest_is_reported_with_its_path_before_anything_is_written(tmp_path, text, capsys):
    manifest = tmp_path / MANIFEST
    manifest.write_text(text, encoding="latin-1")
    with pytest.raises(ModelFileError, match=f"^{tmp_path / MANIFEST}: "):
        read_manifest(tmp_path)
    assert main(["export", "aligned_iou", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(manifest) in err
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [MANIFEST]
    assert manifest.read_text(encoding="latin-1") == text


def test_corrupt_manifest_leaves_an_existing_model_untouched(tmp_path):
    export_graph(catalog.get("aligned_iou"), tmp_path)
    before = (tmp_path / "aligned_iou.onnx").read_bytes()
    (tmp_path / MANIFEST).write_text("{\n")
    with pytest.raises(ModelFileError, match="not a readable manifest"):
        write_model(tmp_path, {"name": "aligned_iou", "file": "aligned_iou.onnx"}, b"other bytes", {})
    assert (tmp_path / "aligned_iou.onnx").read_bytes() == before


def test_verify_checks_the_manifest_sha256(tmp_path, capsys):
    export_graph(catalog.get("aligned_iou"), tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["graphs"][0]["sha256"] = "0" * 64
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    def names_the_mismatch(text: str) -> bool:
        return "aligned_iou.onnx: sha256" in text and "does not match" in text and "'aligned_iou'" in text

    # One file: a one-line error. A catalog run: that graph's row fails naming the mismatch, the others go on.
    assert main(["verify", str(tmp_path / "aligned_iou.onnx")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and names_the_mismatch(err[0])
    assert main(["verify", "aligned_iou", "--models", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert names_the_mismatch(" ".join(out.split())) and "FAIL" in out


def test_export_killed_between_model_and_manifest_does_not_verify(tmp_path, capsys, exported):
    """A kill after the .onnx write leaves a TorchScript/opset-17 file under the dynamo/opset-18 entry."""
    export_graph(catalog.get("aligned_iou"), tmp_path)
    assert read_manifest(tmp_path)["graphs"][0]["exporter"] == "dynamo"
    # What the interrupted `exportloss export aligned_iou --exporter torchscript --opset 17` leaves behind:
    other = export_graph(catalog.get("aligned_iou"), tmp_path / "elsewhere", exporter="torchscript", opset=17)
    shutil.copyfile(other.path, tmp_path / "aligned_iou.onnx")
    with pytest.raises(ModelMismatchError, match=r"'aligned_iou' \([0-9a-f]{16}…, dynamo, opset 18\)"):
        load_model(tmp_path / "aligned_iou.onnx")
    assert main(["verify", str(tmp_path / "aligned_iou.onnx")]) == 1
    assert main(["check-trt", str(tmp_path / "aligned_iou.onnx")]) == 1
    assert "interrupted" in capsys.readouterr().err
    # Re-exporting repairs the pair.
    export_graph(catalog.get("aligned_iou"), tmp_path, exporter="torchscript", opset=17)
    assert main(["verify", str(tmp_path / "aligned_iou.onnx")]) == 0


def test_a_file_without_a_manifest_entry_is_not_checked_against_one(tmp_path, exported):
    shutil.copyfile(exported("aligned_iou"), tmp_path / "aligned_iou.onnx")
    write_model(tmp_path, {"name": "other", "file": "other.onnx"}, b"x", {})
    model, entry = load_model(tmp_path / "aligned_iou.onnx")
    assert entry.name == "aligned_iou"
