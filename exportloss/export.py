"""Export catalog graphs to single-file ONNX models and keep ``manifest.json`` beside them.

Data path: catalog entry -> module + example inputs -> ``torch.onnx.export`` (dynamo or TorchScript)
-> :func:`exportloss.graph_checks.check_graph` -> atomic write of ``DIR/NAME.onnx`` -> manifest update.
A failed export or check leaves neither a partial file nor a changed manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from . import __version__
from ._files import atomic_write
from .catalog import GraphEntry
from .catalog._registry import Shapes
from .graph_checks import check_graph, iter_nodes

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = 18
"""torchlib's native opset: no version conversion, and inside every supported TensorRT's range (9-20 for 10.1)."""

DYNAMO_MIN_OPSET = 18
MANIFEST = "manifest.json"
METADATA_GRAPH = "exportloss.graph"


@dataclass(frozen=True)
class ExportResult:
    name: str
    path: Path
    model: onnx.ModelProto
    exporter: str
    opset: int


def versions() -> dict[str, str]:
    import onnxruntime
    import onnxscript

    return {
        "exportloss": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def to_torch(inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in inputs.items()}


def export_model(entry: GraphEntry, exporter: str = "dynamo", opset: int = DEFAULT_OPSET, shapes: Shapes | None = None) -> onnx.ModelProto:
    """Export ``entry`` at its catalog shapes (or ``shapes``) and return the checked model, unsaved."""
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}; got {exporter!r}")
    if exporter == "dynamo" and opset < DYNAMO_MIN_OPSET:
        # torch's down-conversion from torchlib's opset 18 has no adapter for Split and fails on these graphs.
        raise ValueError(
            f"the dynamo exporter writes opset {DYNAMO_MIN_OPSET} or later; for opset {opset} use --exporter torchscript"
        )
    module = entry.build().eval()
    example = to_torch(entry.example_inputs(shapes))
    args = tuple(example[spec.name] for spec in entry.inputs)
    input_names = [spec.name for spec in entry.inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The dynamo exporter logs a warning per torchvision op it cannot register when torchvision is absent.
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
        if exporter == "dynamo":
            program = torch.onnx.export(
                module, args, dynamo=True, opset_version=opset, input_names=input_names,
                output_names=list(entry.outputs), external_data=False, verbose=False,
            )
            model = program.model_proto
        else:
            buffer = io.BytesIO()
            torch.onnx.export(
                module, args, buffer, dynamo=False, opset_version=opset, input_names=input_names,
                output_names=list(entry.outputs),
            )
            model = _optimize(onnx.load_from_string(buffer.getvalue()))
    _stamp(model, entry.name, exporter)
    check_graph(model, allowed_ops=entry.allowed_ops)
    return model


def _optimize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding and dead-node removal for TorchScript exports (dynamo exports already get it)."""
    import onnxscript.optimizer

    return onnxscript.optimizer.optimize(model)


def _stamp(model: onnx.ModelProto, name: str, exporter: str) -> None:
    # The dynamo exporter records each node's Python stack trace, with absolute paths of the exporting
    # checkout: dropping it keeps machine paths out of shipped models and makes exports byte-stable.
    for node in iter_nodes(model.graph):
        del node.metadata_props[:]
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info, *model.graph.initializer):
        del value.metadata_props[:]
    model.producer_name = "exportloss"
    model.producer_version = __version__
    onnx.helper.set_model_props(model, {METADATA_GRAPH: name, "exportloss.exporter": exporter})


def export_graph(
    entry: GraphEntry,
    out_dir: str | os.PathLike = "models",
    exporter: str = "dynamo",
    opset: int = DEFAULT_OPSET,
    shapes: Shapes | None = None,
) -> ExportResult:
    """Export ``entry`` to ``out_dir/NAME.onnx`` (one file, no external data) and update the manifest."""
    model = export_model(entry, exporter, opset, shapes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{entry.name}.onnx"
    data = model.SerializeToString()
    atomic_write(path, data)
    _update_manifest(out, model, entry.name, path.name, hashlib.sha256(data).hexdigest(), exporter)
    return ExportResult(entry.name, path, model, exporter, opset_of(model))


def opset_of(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def tensor_specs(values) -> list[dict]:
    specs = []
    for value in values:
        tensor_type = value.type.tensor_type
        shape = [dim.dim_value if dim.HasField("dim_value") else dim.dim_param for dim in tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        specs.append({"name": value.name, "shape": shape, "dtype": dtype})
    return specs


def _update_manifest(out: Path, model: onnx.ModelProto, name: str, file: str, sha256: str, exporter: str) -> None:
    manifest = read_manifest(out)
    inferred = onnx.shape_inference.infer_shapes(model)
    record = {
        "name": name,
        "file": file,
        "sha256": sha256,
        "opset": opset_of(model),
        "exporter": exporter,
        "inputs": tensor_specs(model.graph.input),
        "outputs": tensor_specs(inferred.graph.output),
    }
    graphs = [g for g in manifest["graphs"] if g["name"] != name] + [record]
    manifest = {"graphs": sorted(graphs, key=lambda g: g["name"]), "versions": versions()}
    atomic_write(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


def read_manifest(out: str | os.PathLike) -> dict:
    path = Path(out) / MANIFEST
    if not path.exists():
        return {"graphs": [], "versions": {}}
    return json.loads(path.read_text())
