"""``attach``: a detector's ONNX model with exportloss's fixed-shape NMS appended, as one model.

Steps, each failing with a one-line ``ValueError`` naming the argument or output:

1. Make the detector's shapes static: a dynamic batch is fixed at ``batch`` (required then), every other
   input dimension must be static, and output dimensions shape inference leaves open are read from one
   onnxruntime run on zeros. Then find the outputs the layout reads (``boxes=``/``scores=`` by name, else
   the only outputs whose shapes fit the layout); their batch must equal ``batch`` when given.
2. Export :class:`~exportloss.detector_nms.layouts.AttachedNMS` with inputs of exactly those shapes and
   dtypes through the project's exporter (:func:`exportloss.export.export_model`: checker, strict shape
   inference, banned operators, static shapes), at the detector's opset: the dynamo exporter from opset 18,
   the TorchScript exporter below it; when neither can write that opset, onnx's version converter takes
   the detector to opset 18.
3. Give the NMS part the detector's IR version when it is valid there (else the newer of the two), prefix
   its names with ``exportloss_nms/`` (its outputs keep theirs), join the two with
   ``onnx.compose.merge_models`` and keep the detector's metadata, producer and graph name.
4. Stamp the joined model (``exportloss.attached``: layout, NMS kind and every option value, box format,
   the detector outputs used, batch, the detector's sha256) so that ``exportloss verify`` can check it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from .. import __version__
from ..catalog import GraphEntry, TensorSpec
from ..detection.options import NMSOptions, RotatedNMSOptions
from ..onnx_graph import default_opset, format_dims, graph_inputs, metadata, opsets, tensor_dims
from .layouts import LAYOUTS, TWO_OUTPUTS, AttachedNMS

METADATA_ATTACHED = "exportloss.attached"
"""Model metadata key of a joined model's stamp (JSON of :class:`AttachStamp`)."""

NMS_PREFIX = "exportloss_nms/"
"""Prefix of every name of the NMS part, so that none clashes with the detector's."""

FLOAT_TYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}
DYNAMO_MIN_OPSET = 18


@dataclass(frozen=True)
class AttachStamp:
    """What ``attach`` wrote into a joined model: enough to rebuild the NMS and its reference."""

    layout: str
    nms: str
    options: dict
    """Every field of the NMS option object (``NMSOptions`` or ``RotatedNMSOptions``)."""
    box_format: str
    num_classes: int | None
    detector_outputs: list[str]
    """The detector outputs the NMS reads, in the layout's order (prediction, or boxes then scores)."""
    outputs: list[str]
    """The joined model's outputs (the NMS's)."""
    batch: int
    detector_sha256: str
    """sha256 of the detector model as ``attach`` received it (file bytes, or the serialised model)."""
    exportloss: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AttachStamp:
        return cls(**json.loads(text))

    def nms_options(self) -> NMSOptions | RotatedNMSOptions:
        cls = RotatedNMSOptions if self.nms == "rotated" else NMSOptions
        return cls(**self.options)


def attach(model: onnx.ModelProto | str | os.PathLike | bytes, *, layout: str, nms: str = "iou",
           boxes: str | None = None, scores: str | None = None, box_format: str = "xyxy",
           num_classes: int | None = None, batch: int | None = None,
           options: NMSOptions | RotatedNMSOptions | None = None, **keywords) -> onnx.ModelProto:
    """The detector ``model`` with fixed-shape NMS appended: its inputs, the NMS's outputs.

    Args:
        model: the detector, as an ``onnx.ModelProto``, a path or serialised bytes.
        layout: how its outputs hold boxes and scores: ``"yolo"``, ``"yolo-obj"``, ``"boxes-scores"`` or
            ``"obb"`` (:mod:`exportloss.detector_nms.layouts`).
        nms: ``"iou"``, ``"diou"`` or ``"rotated"`` (layout ``obb``).
        boxes, scores: output names (``boxes`` alone names the one output of the one-output layouts);
            default: the outputs whose shapes fit the layout.
        box_format: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``: the boxes output of ``boxes-scores``.
        num_classes: score rows/columns to use (default: all after the boxes); more follow in segmentation heads.
        batch: the batch size, required when the detector's is dynamic.
        options, **keywords: the NMS options, an ``NMSOptions``/``RotatedNMSOptions`` or its fields
            (``iou_thr``, ``score_thr``, ``max_det``, ``candidates``, ``iterations``, ...).

    Returns:
        the joined, checked ``onnx.ModelProto`` with the ``exportloss.attached`` stamp.
    """
    detector, sha256 = _load(model)
    if METADATA_ATTACHED in metadata(detector):
        raise ValueError("the model already has exportloss NMS attached (its exportloss.attached metadata); attach to the detector itself")
    module = AttachedNMS(layout, nms, box_format, num_classes, options, **keywords)
    detector = _with_static_shapes(detector, batch)
    chosen = _choose_outputs(detector, layout, boxes, scores)
    batch = _batch_of(chosen, batch)
    specs = tuple(TensorSpec(f"{name}", _static(value), FLOAT_TYPES[value.type.tensor_type.elem_type])
                  for name, value in zip(_input_names(layout), chosen))
    detector, nms_model = _export_nms(detector, module, specs, batch)
    joined = _join(detector, nms_model, [value.name for value in chosen], specs)
    stamp = AttachStamp(layout, nms, {k: _jsonable(v) for k, v in asdict(module.options).items()}, box_format,
                        num_classes, [value.name for value in chosen], [o.name for o in joined.graph.output], batch, sha256)
    onnx.helper.set_model_props(joined, {**metadata(joined), METADATA_ATTACHED: stamp.to_json()})
    onnx.checker.check_model(joined)
    return joined


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _input_names(layout: str) -> tuple[str, ...]:
    return ("boxes", "scores") if layout in TWO_OUTPUTS else ("prediction",)


def _load(model) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        return model, hashlib.sha256(model.SerializeToString()).hexdigest()
    if isinstance(model, (bytes, bytearray)):
        data = bytes(model)
        where = "the model bytes"
    else:
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"{path}: {'does not exist' if not path.exists() else 'not a file'}")
        data, where = path.read_bytes(), str(path)
    try:
        loaded = onnx.load_from_string(data)
        if isinstance(model, (str, os.PathLike)):  # external data lives beside the file
            onnx.load_external_data_for_model(loaded, str(Path(model).parent))
    except Exception as err:  # protobuf's DecodeError and friends
        raise ValueError(f"{where}: not an ONNX model ({_first_line(err)})") from None
    if not loaded.HasField("graph") or not loaded.graph.output:
        raise ValueError(f"{where}: not an ONNX model with outputs")
    return loaded, hashlib.sha256(data).hexdigest()


def _describe(value: onnx.ValueInfoProto) -> str:
    dims = tensor_dims(value)
    elem = value.type.tensor_type.elem_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else "?"
    return f"{value.name} {dtype}[{format_dims(dims) if dims is not None else '?'}]"


def _fits(layout: str, value: onnx.ValueInfoProto, role: str) -> bool:
    """Whether an output's shape can be ``role`` (``prediction``, ``boxes``, ``scores``) of ``layout``."""
    dims = tensor_dims(value)
    if dims is None or value.type.tensor_type.elem_type not in FLOAT_TYPES:
        return False
    if role == "boxes":
        return len(dims) == 3 and dims[2] == 4
    if role == "scores":
        return len(dims) in (2, 3)
    if len(dims) != 3:
        return False
    channels, count = (dims[2], dims[1]) if layout == "yolo-obj" else (dims[1], dims[2])
    least = {"yolo": 5, "yolo-obj": 6, "obb": 6}[layout]
    return channels is not None and channels >= least and (count is None or count > channels)


def _choose_outputs(model: onnx.ModelProto, layout: str, boxes: str | None, scores: str | None) -> list[onnx.ValueInfoProto]:
    outputs = {value.name: value for value in model.graph.output}
    listing = ", ".join(_describe(value) for value in outputs.values())
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    roles = ("boxes", "scores") if layout in TWO_OUTPUTS else ("prediction",)
    if scores is not None and layout not in TWO_OUTPUTS:
        raise ValueError(f"--scores applies to layout boxes-scores; layout {layout} reads one output (name it with --boxes)")
    named = dict(zip(roles, (boxes, scores)))
    chosen: list[onnx.ValueInfoProto] = []
    for role in roles:
        flag = "--scores" if role == "scores" else "--boxes"
        if named.get(role) is not None:
            if named[role] not in outputs:
                raise ValueError(f"{flag} {named[role]}: the detector has no such output; its outputs are {listing}")
            value = outputs[named[role]]
            if not _fits(layout, value, role):
                raise ValueError(f"{flag} {named[role]}: {_describe(value)} is not a {role} output of layout {layout} "
                                 f"({_LAYOUT_SHAPES[layout]})")
        else:
            fitting = [v for v in outputs.values() if _fits(layout, v, role) and v not in chosen
                       and (role != "scores" or tensor_dims(v)[:2] == tensor_dims(chosen[0])[:2])]
            if len(fitting) > 1:  # boxes [B, N, 4] and 4-class scores [B, N, 4] both fit: the names may tell
                named_like = [v for v in fitting if any(hint in v.name.lower() for hint in _NAME_HINTS[role])]
                fitting = named_like if len(named_like) == 1 else fitting
            if len(fitting) != 1:
                what = "no output" if not fitting else "outputs " + ", ".join(_describe(v) for v in fitting)
                raise ValueError(f"layout {layout} ({_LAYOUT_SHAPES[layout]}): {what} fit{'s' if len(fitting) == 1 else ''} "
                                 f"the {role}; name it with {flag} (outputs: {listing})")
            value = fitting[0]
        chosen.append(value)
    if len(chosen) == 2 and chosen[0].name == chosen[1].name:
        raise ValueError(f"--boxes and --scores name the same output {chosen[0].name!r}")
    return chosen


_NAME_HINTS = {"boxes": ("box",), "scores": ("score", "logit", "conf", "prob", "cls", "class"), "prediction": ("output",)}
"""Parts of output names that settle which of several outputs with fitting shapes is which."""

_LAYOUT_SHAPES = {"yolo": "one output [B, 4+C, N]", "yolo-obj": "one output [B, N, 5+C]", "obb": "one output [B, 4+C+1, N]",
                  "boxes-scores": "boxes [B, N, 4] and scores [B, N, C] or [B, N]"}


def _static(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    dims = tensor_dims(value)
    if dims is None or None in dims:
        raise ValueError(f"detector output {_describe(value)} has a dynamic dimension besides the batch: "
                         "export the detector at a fixed image size")
    return dims  # type: ignore[return-value]


def _with_static_shapes(model: onnx.ModelProto, batch: int | None) -> onnx.ModelProto:
    """The detector with every input and output shape static: a dynamic batch fixed at ``batch``, output
    dimensions that shape inference leaves open read from one onnxruntime run on zeros."""
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"--batch must be a positive integer; got {batch!r}")
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    inputs = graph_inputs(fixed)
    for value in inputs:
        dims = tensor_dims(value)
        if dims and (dims[0] is None or dims[0] <= 0):
            if batch is None:
                raise ValueError(f"the detector's batch is dynamic (input {_describe(value)}); give --batch B "
                                 "(the fixed-shape NMS needs one)")
            value.type.tensor_type.shape.dim[0].dim_value = batch
        dims = tensor_dims(value)
        if dims is None or any(d is None or d <= 0 for d in dims):
            raise ValueError(f"detector input {_describe(value)} has a dynamic dimension besides the batch: "
                             "export the detector at a fixed image size")
    if all(tensor_dims(v) is not None and None not in tensor_dims(v) for v in fixed.graph.output):
        return fixed
    del fixed.graph.value_info[:]  # inferred again at the fixed input shapes
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:  # noqa: BLE001 - onnx raises several kinds; the run below decides
        inferred = fixed
    declared = {v.name: v for v in fixed.graph.output}
    open_outputs = []
    for value in inferred.graph.output:
        dims = tensor_dims(value)
        if dims is None or None in dims:
            open_outputs.append(value.name)
        else:
            declared[value.name].type.CopyFrom(value.type)
    if open_outputs:
        for name, shape in _run_shapes(fixed, open_outputs).items():
            del declared[name].type.tensor_type.shape.dim[:]
            declared[name].type.tensor_type.shape.dim.extend(onnx.TensorShapeProto.Dimension(dim_value=d) for d in shape)
    return fixed


def _run_shapes(model: onnx.ModelProto, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Shapes of the outputs ``names`` from one onnxruntime run of the detector on zero inputs."""
    import onnxruntime as ort

    from ..backends.ort import quiet_onnxruntime

    feeds = {v.name: np.zeros(tensor_dims(v), onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type))
             for v in graph_inputs(model)}
    try:
        with quiet_onnxruntime():
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            results = session.run(names, feeds)
    except Exception as err:  # noqa: BLE001 - onnxruntime raises bare RuntimeErrors
        raise ValueError(f"shape inference left outputs {', '.join(names)} open and onnxruntime could not run the "
                         f"detector to read them ({_first_line(err)})") from None
    return {name: tuple(result.shape) for name, result in zip(names, results)}


def _batch_of(chosen: list[onnx.ValueInfoProto], batch: int | None) -> int:
    found = {tensor_dims(value)[0] for value in chosen}
    if len(found) > 1:
        raise ValueError(f"outputs {', '.join(_describe(v) for v in chosen)} disagree on the batch size")
    (size,) = found
    if batch is not None and batch != size:
        raise ValueError(f"--batch {batch}: the detector's output {_describe(chosen[0])} has batch {size}")
    return size


def _nms_entry(module: AttachedNMS, specs: tuple[TensorSpec, ...], batch: int) -> GraphEntry:
    """The NMS part as a graph entry, so the project's exporter and checks take it as they take the catalog's."""
    def example(shapes, rng: np.random.Generator):
        return {name: rng.uniform(0.0, 1.0, shape).astype(dtype)
                for (name, shape), dtype in zip(shapes.items(), (spec.dtype for spec in specs))}

    probe = example({spec.name: spec.shape for spec in specs}, np.random.default_rng(0))
    with torch.no_grad():
        result = module(*(torch.from_numpy(probe[spec.name]) for spec in specs))
    outputs = tuple(TensorSpec(name, tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."))
                    for name, tensor in zip(result._fields, result))
    return GraphEntry(
        name="attached_nms", summary=f"{module.decode.layout} layout + NMS", sizes={"batch": batch},
        make=lambda sizes: module, inputs=specs, outputs=outputs,
        reference=lambda *args: (_ for _ in ()).throw(NotImplementedError("verify the joined model: exportloss verify")),
        random_inputs=example, edge_cases=lambda shapes, rng: [],
    )


def _export_nms(detector: onnx.ModelProto, module: AttachedNMS, specs: tuple[TensorSpec, ...],
                batch: int) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """``(detector, NMS model)`` at one opset: the detector's when an exporter writes it, else 18 for both."""
    from ..export import export_model, opset_range

    entry = _nms_entry(module, specs, batch)
    opset = default_opset(detector)
    exporter = "dynamo" if opset >= DYNAMO_MIN_OPSET else "torchscript"
    low, high = opset_range(exporter)
    if low <= opset <= high:
        try:
            return detector, _without_stamps(export_model(entry, exporter, opset))
        except ValueError:
            if exporter == "dynamo":
                raise
    try:
        converted = onnx.version_converter.convert_version(detector, DYNAMO_MIN_OPSET)
    except Exception as err:  # noqa: BLE001 - the converter raises RuntimeError or ValueError per op
        raise ValueError(f"the detector's opset {opset}: no exporter writes the NMS at it, and onnx's version converter "
                         f"could not take the detector to opset {DYNAMO_MIN_OPSET} ({_first_line(err)})") from None
    logging.getLogger(__name__).info("detector converted from opset %d to %d", opset, DYNAMO_MIN_OPSET)
    return converted, _without_stamps(export_model(entry, "dynamo", DYNAMO_MIN_OPSET))


def _without_stamps(model: onnx.ModelProto) -> onnx.ModelProto:
    del model.metadata_props[:]  # the joined model gets its own stamp; catalog stamps would misdescribe it
    return model


def _join(detector: onnx.ModelProto, nms_model: onnx.ModelProto, detector_outputs: list[str],
          specs: tuple[TensorSpec, ...]) -> onnx.ModelProto:
    nms_model = _at_ir_version(nms_model, detector.ir_version)
    if nms_model.ir_version != detector.ir_version:
        raised = onnx.ModelProto()
        raised.CopyFrom(detector)
        raised.ir_version = nms_model.ir_version
        detector = raised
    shared = opsets(detector)
    for opset in nms_model.opset_import:  # same domain, same version: merge_models requires it
        domain = "" if opset.domain in ("", "ai.onnx") else opset.domain
        if domain in shared and shared[domain] != opset.version:
            raise ValueError(f"the detector imports opset {shared[domain]} of domain {domain or 'ai.onnx'!r}, the NMS "
                             f"{opset.version}; convert the detector first")
    nms_model = onnx.compose.add_prefix(nms_model, NMS_PREFIX, rename_outputs=False)
    taken = {name for node in detector.graph.node for name in (*node.input, *node.output)}
    taken |= {value.name for value in (*detector.graph.input, *detector.graph.initializer)}
    clash = [o.name for o in nms_model.graph.output if o.name in taken]
    if clash:
        raise ValueError(f"the detector already has values named {', '.join(clash)}, the NMS outputs' names")
    joined = onnx.compose.merge_models(
        detector, nms_model, io_map=[(out, NMS_PREFIX + spec.name) for out, spec in zip(detector_outputs, specs)],
        outputs=[o.name for o in nms_model.graph.output], name=detector.graph.name or "detector_with_nms",
        doc_string=detector.graph.doc_string, producer_name=detector.producer_name or "exportloss",
        producer_version=detector.producer_version or __version__, domain=detector.domain,
        model_version=detector.model_version or 1,
    )
    seen: dict[str, int] = {}
    for opset in joined.opset_import:
        seen.setdefault(opset.domain, opset.version)
    del joined.opset_import[:]
    joined.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in seen.items())
    return joined


def _at_ir_version(model: onnx.ModelProto, ir_version: int) -> onnx.ModelProto:
    """``model`` declared at ``ir_version`` when it is valid there (it uses nothing newer), else unchanged."""
    if ir_version >= model.ir_version:
        return model
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    lowered.ir_version = ir_version
    try:
        onnx.checker.check_model(lowered, full_check=True)
    except onnx.checker.ValidationError:
        return model
    return lowered


def attached_stamp(model: onnx.ModelProto) -> AttachStamp | None:
    """The ``exportloss.attached`` stamp of a joined model, None when it has none."""
    text = metadata(model).get(METADATA_ATTACHED)
    return None if text is None else AttachStamp.from_json(text)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


__all__ = ["METADATA_ATTACHED", "NMS_PREFIX", "AttachStamp", "attach", "attached_stamp"]
