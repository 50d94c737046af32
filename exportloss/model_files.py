"""Model files on disk: the manifest beside them, safe under concurrent writers, and one validation of a file.

``DIR/manifest.json`` records each exported graph's file, sha256, opset, exporter, inputs and outputs.
Writers (:func:`write_model`) hold ``DIR/.manifest.json.lock`` (a ``filelock`` lock) across
read-manifest, write-model and write-manifest, and both files are replaced atomically, so concurrent
exports into one directory keep every entry, and a corrupt manifest stops an export before anything is
written. Readers (:func:`load_model`) check a file against its manifest entry, so a process killed
between the two writes leaves a file that fails verification rather than one that passes under the
wrong entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
from filelock import FileLock

from ._files import atomic_write
from .onnx_graph import dtype_name, graph_inputs, metadata, static_input_shapes

if TYPE_CHECKING:
    from .catalog import GraphEntry

MANIFEST = "manifest.json"
METADATA_GRAPH = "exportloss.graph"
"""Model metadata key holding the catalog name of an exported graph."""

METADATA_SIZES = "exportloss.sizes"
"""Model metadata key holding the graph's named sizes as JSON, written when they are not the catalog's."""

METADATA_OPTIONS = "exportloss.options"
"""Model metadata key holding the options set with ``--option`` as JSON, written when there are any."""


class ModelFileError(ValueError):
    """A model file or manifest that cannot be used: missing, unreadable, not ONNX, not the graph it claims.

    The message is one line that starts with the file's path. ``exit_code`` is the command line's status.
    """

    exit_code = 2


class ModelMismatchError(ModelFileError):
    """A readable model file that differs from what its manifest records: a failed check, not bad usage."""

    exit_code = 1


def read_manifest(directory: str | os.PathLike) -> dict:
    """``DIR/manifest.json`` as ``{"graphs": [...], "versions": {...}}``; empty when there is none.

    Raises :class:`ModelFileError` naming the file when it is not a manifest.
    """
    path = Path(directory) / MANIFEST
    if not path.exists():
        return {"graphs": [], "versions": {}}
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: not a readable manifest ({err}); fix or delete it") from None
    graphs = manifest.get("graphs") if isinstance(manifest, dict) else None
    if not isinstance(graphs, list) or not all(
        isinstance(g, dict) and isinstance(g.get("name"), str) and isinstance(g.get("file"), str) and isinstance(g.get("sha256"), str)
        for g in graphs
    ):
        raise ModelFileError(f"{path}: not a manifest (expected {{\"graphs\": [{{\"name\", \"file\", \"sha256\", ...}}]}}); fix or delete it")
    manifest.setdefault("versions", {})
    return manifest


def manifest_lock(directory: str | os.PathLike) -> FileLock:
    """The lock every manifest writer holds; a hidden file beside the manifest (left in place, as locks are)."""
    return FileLock(_lock_path(directory))


def _lock_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / f".{MANIFEST}.lock"


def check_lock(directory: str | os.PathLike) -> None:
    """Raise :class:`ModelFileError` naming the lock file when it exists but cannot be opened for locking (a
    directory, a file of another user without write permission): checked before an export, not after it."""
    lock = _lock_path(directory)
    if not lock.exists() and not lock.is_symlink():
        return
    try:
        with open(lock, "a"):
            pass
    except OSError as err:
        raise ModelFileError(f"{lock}: the manifest's lock file cannot be used ({err.strerror or err}); "
                             "remove it or fix its permissions") from None


TEMP_FILE = re.compile(r"\.(?:.+\.onnx|" + re.escape(MANIFEST) + r")\.[0-9a-f]{12}\.tmp")
"""The temporary files :func:`write_model` writes (``.NAME.onnx.<hex>.tmp``, ``.manifest.json.<hex>.tmp``)."""


def _remove_stale_temp_files(directory: Path) -> None:
    """Remove temporary files that a killed writer left behind (only writers holding the lock make them, and
    this one holds it, so every such file is stale)."""
    for leftover in directory.iterdir():
        if TEMP_FILE.fullmatch(leftover.name) and leftover.is_file():
            leftover.unlink(missing_ok=True)


def write_model(directory: str | os.PathLike, record: dict, data: bytes, versions: dict[str, str]) -> Path:
    """Write ``data`` to ``DIR/record["file"]`` and put ``record`` (with its sha256) into the manifest.

    Under the directory's lock: read the manifest (a corrupt one raises before anything is written),
    replace the model file, replace the manifest. Returns the model's path.
    """
    directory = Path(directory)
    path = directory / record["file"]
    record = {"name": record["name"], "file": record["file"], "sha256": hashlib.sha256(data).hexdigest(), **record}
    check_lock(directory)
    with manifest_lock(directory):
        _remove_stale_temp_files(directory)
        manifest = read_manifest(directory)
        atomic_write(path, data)
        graphs = [g for g in manifest["graphs"] if g["name"] != record["name"] and g["file"] != record["file"]]
        manifest = {"graphs": sorted([*graphs, record], key=lambda g: g["name"]), "versions": versions}
        atomic_write(directory / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return path


def load_model(path: str | os.PathLike, entry: GraphEntry | None = None,
               catalog_graph: bool = True) -> tuple[onnx.ModelProto, GraphEntry | None]:
    """Load and validate one model file; returns ``(model, entry)``.

    The file is read once; every check below and every session that runs the returned ``model`` see those
    same bytes (a file rewritten meanwhile cannot pass as the one checked). Checks, each failing with a
    one-line :class:`ModelFileError` that names the file: it exists and is a regular file, it is non-empty
    and parses as a valid ONNX model, its tensors are in the file (a catalog graph with external data is
    refused; any other ONNX file gets them from beside it); then, when ``DIR/manifest.json`` has an
    entry for the file, the file's sha256 matches it (:class:`ModelMismatchError` otherwise). With
    ``catalog_graph`` (verification needs it) the model also carries the catalog name stamp written at
    export, the name is a catalog graph (and ``entry``'s, when one is given), and its inputs and outputs
    have the catalog entry's names, dtypes and ranks, and the entry comes back at the model's sizes (the
    ``exportloss.sizes`` stamp, then its static input shapes) and options (the ``exportloss.options`` stamp). Without it (any ONNX file, as ``check-trt``
    takes) ``entry`` is returned as given.
    """
    from . import catalog

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: does not exist")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file")
    try:
        data = path.read_bytes()  # read once: the sha256, the checks and every session see these very bytes
    except OSError as err:
        raise ModelFileError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not data:
        raise ModelFileError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load_from_string(data)
    except Exception as err:  # protobuf's DecodeError for garbage or a truncated file
        raise ModelFileError(f"{path}: not an ONNX model ({_first_line(err)})") from None
    if not model.HasField("graph") or not model.opset_import:
        raise ModelFileError(f"{path}: not an ONNX model (no graph or no opset)")
    external = _external_data_files(model)
    if external and catalog_graph:
        raise ModelFileError(f"{path}: keeps tensors in external data ({', '.join(external)}); `exportloss export` writes "
                             "single-file models, and verification runs the bytes it checked: re-export it")
    try:
        if external:  # any ONNX file (check-trt): the tensors come from beside the file, as onnxruntime would take them
            onnx.load_external_data_for_model(model, str(path.parent))
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, OSError) as err:
        raise ModelFileError(f"{path}: not a valid ONNX model ({_first_line(err)})") from None
    _check_against_manifest(path, data)
    if not catalog_graph:
        return model, entry
    stamps = metadata(model)
    name = stamps.get(METADATA_GRAPH)
    if name is None:
        raise ModelFileError(f"{path}: not written by `exportloss export` (no {METADATA_GRAPH!r} metadata naming its catalog graph)")
    if entry is not None and name != entry.name:
        raise ModelFileError(f"{path}: holds catalog graph {name!r}, not {entry.name!r}")
    try:
        entry = entry or catalog.get(name)
    except catalog.UnknownGraphError:
        raise ModelFileError(f"{path}: its {METADATA_GRAPH!r} metadata names {name!r}, which is not a catalog graph") from None
    try:
        sizes = json.loads(stamps[METADATA_SIZES]) if METADATA_SIZES in stamps else None
        if sizes is not None and not isinstance(sizes, dict):
            raise ValueError(f"its {METADATA_SIZES!r} stamp is not a mapping of sizes: {stamps[METADATA_SIZES]!r}")
        options = json.loads(stamps[METADATA_OPTIONS]) if METADATA_OPTIONS in stamps else None
        configured = entry.at(sizes, None, options, size_label=f"its {METADATA_SIZES!r} stamp") if options else entry
    except (ValueError, AttributeError) as err:  # a foreign or garbled stamp
        raise ModelFileError(f"{path}: its sizes or options do not fit catalog graph {entry.name!r} ({_first_line(err)})") from None
    _check_interface(path, model, configured)  # options may change the outputs (efficientnms)
    try:
        return model, entry.at(sizes, static_input_shapes(model), options,
                               size_label=f"its {METADATA_SIZES!r} stamp", shape_label="input")
    except (ValueError, AttributeError) as err:  # a foreign or garbled stamp, inputs that contradict it
        raise ModelFileError(f"{path}: its sizes or options do not fit catalog graph {entry.name!r} ({_first_line(err)})") from None


def _external_data_files(model: onnx.ModelProto) -> list[str]:
    """The external data files the model's tensors point to (none for a single-file model)."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    files = {entry.value for tensor in _get_all_tensors(model) if uses_external_data(tensor)
             for entry in tensor.external_data if entry.key == "location"}
    return sorted(files)


def _check_against_manifest(path: Path, data: bytes) -> None:
    manifest = read_manifest(path.parent)
    record = next((g for g in manifest["graphs"] if g["file"] == path.name), None)
    if record is None:
        return
    digest = hashlib.sha256(data).hexdigest()
    if digest != record["sha256"]:
        raise ModelMismatchError(
            f"{path}: sha256 {digest[:16]}… does not match {path.parent / MANIFEST}'s entry {record['name']!r} "
            f"({record['sha256'][:16]}…, {record.get('exporter', '?')}, opset {record.get('opset', '?')}); "
            "the file changed after export or an export was interrupted: re-export it"
        )


def _check_interface(path: Path, model: onnx.ModelProto, entry: GraphEntry) -> None:
    """Inputs and outputs carry the catalog entry's names, dtypes and ranks (sizes may differ: ``--shape``)."""
    want_inputs = [(spec.name, spec.dtype, len(spec.shape)) for spec in entry.inputs]
    got_inputs = [(v.name, dtype_name(v), len(v.type.tensor_type.shape.dim)) for v in graph_inputs(model)]
    if got_inputs != want_inputs:
        raise ModelFileError(f"{path}: inputs {_describe(got_inputs)} are not those of catalog graph {entry.name!r}, {_describe(want_inputs)}")
    got_outputs = [v.name for v in model.graph.output]
    if got_outputs != entry.output_names:
        raise ModelFileError(f"{path}: outputs {got_outputs} are not those of catalog graph {entry.name!r}, {entry.output_names}")


def _describe(specs) -> str:
    return "[" + ", ".join(f"{name} {dtype}[rank {rank}]" for name, dtype, rank in specs) + "]"


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
