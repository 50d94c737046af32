"""Export catalog graphs to single-file ONNX models and keep ``manifest.json`` beside them.

Data path: catalog entry -> module + example inputs -> ``torch.onnx.export`` (dynamo or TorchScript)
-> :func:`exportloss.graph_checks.check_graph` -> :func:`exportloss.model_files.write_model` (under the
directory's lock: atomic write of ``DIR/NAME.onnx``, then of the manifest). A failed export or check
leaves neither a partial file nor a changed manifest.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from . import __version__
from .catalog import CATALOG, GraphEntry, Shapes, Sizes
from .graph_checks import check_graph
from .model_files import MANIFEST, METADATA_GRAPH, METADATA_OPTIONS, METADATA_SIZES, check_lock, read_manifest, write_model
from .onnx_graph import default_opset, model_nodes, tensor_specs
from .ops.tile_plans import recording_tile_plans
from .row_tiles import tile_planes

__all__ = [
    "DEFAULT_OPSET", "EXPORTERS", "MANIFEST", "METADATA_GRAPH", "ExportResult", "check_export_arguments", "export_graph",
    "export_model",
    "opset_range", "read_manifest",
]

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = 18
"""torchlib's native opset: no version conversion, and inside every supported TensorRT's range (9-20 for 10.1)."""

DYNAMO_MIN_OPSET = 18

TORCHSCRIPT_MIN_OPSET = 13
"""The oldest opset at which the TorchScript exporter writes every catalog graph: torch advertises 7, but at 7 and 8
no graph passes the checker (initializers are not graph inputs), at 9 the rotated IoU crashes the exporter, at 9
and 10 the softmax focal loss fails shape inference, and below 13 ``center_update``'s bfloat16 split has no Cast
(measured with torch 2.13; ``tests/toolchain/test_cli_robustness.py`` exports at this opset)."""


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


def opset_range(exporter: str) -> tuple[int, int]:
    """The default-domain opsets ``exporter`` writes with the installed torch and onnx, inclusive."""
    if exporter == "dynamo":
        # torchlib writes opset 18; onnx's version converter takes it up to the newest opset onnx knows.
        # Down-conversion has no adapter for Split and fails on these graphs.
        return DYNAMO_MIN_OPSET, onnx.defs.onnx_opset_version()
    from torch.onnx import _constants

    return max(_constants.ONNX_MIN_OPSET, TORCHSCRIPT_MIN_OPSET), _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET


def export_model(entry: GraphEntry, exporter: str = "dynamo", opset: int = DEFAULT_OPSET, shapes: Shapes | None = None,
                 sizes: Sizes | None = None) -> onnx.ModelProto:
    """Export ``entry`` at its sizes (or at ``entry.at(sizes, shapes)``) and return the checked model, unsaved.

    Raises ``ValueError`` (one line) for an exporter or opset the installed tools cannot write, for
    ``sizes`` and ``shapes`` the graph cannot take (an unknown size, a size it fixes, two values for one
    size, sizes its module rejects), and when the exporter fails or writes another opset than asked for.
    """
    _check_exporter(exporter, opset)
    entry = entry.at(sizes, shapes)
    check_memory(entry)
    try:
        module = entry.build().eval()
    except (ValueError, TypeError) as err:  # the module's own words, said of the sizes the user gave
        sizes_text = ", ".join(f"{name}={value}" for name, value in entry.sizes.items())
        raise ValueError(f"graph {entry.name!r} cannot be built at sizes {sizes_text}: {_first_line(err)}") from None
    example = to_torch(entry.example_inputs())
    args = tuple(example[spec.name] for spec in entry.inputs)
    _run_eagerly(entry, module, args)
    input_names = [spec.name for spec in entry.inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The dynamo exporter logs a warning per torchvision op it cannot register when torchvision is
        # absent, and onnxscript's version converter logs a traceback when it falls back to opset 18;
        # the opset check below reports that case in one line.
        for logger in ("torch.onnx._internal.exporter._registration", "onnxscript.version_converter"):
            logging.getLogger(logger).setLevel(logging.CRITICAL)
        try:
            # Row-tiled graphs are traced untiled and tiled afterwards (exportloss.row_tiles: the exporter's
            # cost then does not grow with the tiles).
            with recording_tile_plans() as tile_plans:
                if exporter == "dynamo":
                    program = torch.onnx.export(
                        module, args, dynamo=True, opset_version=opset, input_names=input_names,
                        output_names=entry.output_names, external_data=False, verbose=False,
                    )
                    model = program.model_proto
                else:
                    buffer = io.BytesIO()
                    torch.onnx.export(
                        module, args, buffer, dynamo=False, opset_version=opset, input_names=input_names,
                        output_names=entry.output_names,
                    )
                    model = _optimize(onnx.load_from_string(buffer.getvalue()))
            model = tile_planes(model, tile_plans)
        except Exception as err:  # the exporters' own errors run to hundreds of lines
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ValueError(f"the {exporter} exporter failed on {entry.name!r} at opset {opset}: {first}") from err
    if default_opset(model) != opset:
        raise ValueError(
            f"--opset {opset}: the {exporter} exporter could not convert {entry.name!r} to opset {opset} "
            f"(it wrote opset {default_opset(model)}); choose another opset"
        )
    _stamp(model, entry, exporter)
    check_graph(model, allowed_ops=entry.allowed_ops)
    return model


def _check_exporter(exporter: str, opset: int) -> None:
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}; got {exporter!r}")
    low, high = opset_range(exporter)
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        hint = "; for an older opset use --exporter torchscript" if exporter == "dynamo" and isinstance(opset, int) and opset < low else ""
        raise ValueError(f"--opset {opset}: the {exporter} exporter writes opsets {low} to {high}{hint}")


def check_export_arguments(entries: list[GraphEntry], out_dir: str | os.PathLike, exporter: str = "dynamo",
                           opset: int = DEFAULT_OPSET, shapes: Shapes | None = None, sizes: Sizes | None = None) -> None:
    """Everything about an export of ``entries`` that can be checked before the first graph is written.

    Raises ``ValueError`` as :func:`export_model` would for any of them (exporter, opset, sizes, memory),
    :class:`~exportloss.model_files.ModelFileError` for a corrupt manifest or an unusable lock file, and
    ``OSError`` for an ``out_dir`` that is a file.
    """
    _check_exporter(exporter, opset)
    for entry in entries:
        check_memory(entry.at(sizes, shapes))
    _check_output_directory(Path(out_dir))


def _check_output_directory(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(out))
    read_manifest(out)  # a corrupt manifest fails now, not after the export's minutes
    check_lock(out)


def memory_needed(entry: GraphEntry) -> int:
    """Bytes the export of ``entry`` holds at least: its inputs and outputs once each, and the module's parameters
    and buffers (counted on the meta device, so nothing is allocated)."""
    total = sum(np.dtype(spec.dtype).itemsize * math.prod(spec.resolve(entry.sizes)) for spec in (*entry.inputs, *entry.outputs))
    try:
        with torch.device("meta"):
            module = entry.build()
    except Exception:  # noqa: BLE001 - sizes the module rejects (export_model reports them in the module's words)
        return total
    return total + sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def check_memory(entry: GraphEntry) -> None:
    """``ValueError`` naming the sizes when ``entry`` needs more memory than this machine has (before allocating)."""
    needed, available = memory_needed(entry), available_memory()
    if available is not None and needed > available:
        sizes = ", ".join(f"{name}={value}" for name, value in entry.sizes.items())
        raise ValueError(f"graph {entry.name!r} at sizes {sizes} needs {needed / 2**30:.1f} GiB for its tensors alone; "
                         f"this machine has {available / 2**30:.1f} GiB available: choose smaller sizes")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo, else physical memory)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _run_eagerly(entry: GraphEntry, module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    """Run the module once on the example: shapes it rejects get its one-line error, not the exporter's pages.

    On meta tensors first: shape checks run, arithmetic costs nothing (a 3000² CIoU graph's planes took
    longer eagerly than its export). A module that needs values (a data-dependent check, a tensor made on
    the CPU) fails on meta tensors with another error and then runs on the example itself.
    """
    try:
        with torch.no_grad():
            try:
                module(*(arg.to("meta") for arg in args))
                return
            except (ValueError, TypeError):
                raise
            except Exception:  # noqa: BLE001 - any step meta tensors cannot take: run on the real example
                pass
            module(*args)
    except (ValueError, TypeError, RuntimeError) as err:
        shapes = ", ".join(f"{spec.name}={'x'.join(map(str, a.shape))}" for spec, a in zip(entry.inputs, args))
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"graph {entry.name!r} cannot take inputs {shapes}: {first}") from None


def _optimize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding and dead-node removal for TorchScript exports (dynamo exports already get it)."""
    import onnxscript.optimizer

    return onnxscript.optimizer.optimize(model)


def _stamp(model: onnx.ModelProto, entry: GraphEntry, exporter: str) -> None:
    # The dynamo exporter records each node's Python stack trace, with absolute paths of the exporting
    # checkout: dropping it keeps machine paths out of shipped models and makes exports byte-stable.
    for node in model_nodes(model):
        del node.metadata_props[:]
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info, *model.graph.initializer):
        del value.metadata_props[:]
    model.producer_name = "exportloss"
    model.producer_version = __version__
    props = {METADATA_GRAPH: entry.name, "exportloss.exporter": exporter}
    catalog_entry = CATALOG.get(entry.name)
    if entry.sizes and (catalog_entry is None or dict(catalog_entry.sizes) != dict(entry.sizes)):
        # Sizes that the inputs may not show (a class count): verification rebuilds the module from them.
        # Not written at the catalog's own sizes, so the committed catalog graphs stay byte-identical.
        props[METADATA_SIZES] = json.dumps(dict(entry.sizes), sort_keys=True)
    if entry.options:  # --option values: verification rebuilds the module (and so the reference) with them
        props[METADATA_OPTIONS] = json.dumps(dict(entry.options), sort_keys=True)
    onnx.helper.set_model_props(model, props)


def export_graph(
    entry: GraphEntry,
    out_dir: str | os.PathLike = "models",
    exporter: str = "dynamo",
    opset: int = DEFAULT_OPSET,
    shapes: Shapes | None = None,
    sizes: Sizes | None = None,
) -> ExportResult:
    """Export ``entry`` to ``out_dir/NAME.onnx`` (one file, no external data) and update the manifest.

    Safe with other processes exporting into ``out_dir`` at the same time (see :mod:`exportloss.model_files`).
    Raises ``ValueError`` as :func:`export_model` does, :class:`~exportloss.model_files.ModelFileError` for a
    corrupt manifest (before anything is written) and ``OSError`` when ``out_dir`` cannot be written.
    """
    out = Path(out_dir)
    _check_output_directory(out)
    entry = entry.at(sizes, shapes)
    model = export_model(entry, exporter, opset)
    out.mkdir(parents=True, exist_ok=True)
    inferred = onnx.shape_inference.infer_shapes(model)
    record = {
        "name": entry.name,
        "file": f"{entry.name}.onnx",
        "opset": default_opset(model),
        "exporter": exporter,
        "inputs": tensor_specs(model.graph.input),
        "outputs": tensor_specs(inferred.graph.output),
    }
    path = write_model(out, record, model.SerializeToString(), versions())
    return ExportResult(entry.name, path, model, exporter, default_opset(model))


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
