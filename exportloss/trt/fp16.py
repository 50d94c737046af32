"""Rewrite a float32 ONNX graph to compute in float16 under a declared precision policy.

TensorRT 11 has no precision flags: networks are strongly typed, so an fp16 engine needs an ONNX graph
whose tensors are fp16. The conversion is onnxconverter-common's ``convert_float_to_float16`` (float
initializers, Constant values, ``Cast(to=FLOAT)`` and value types become fp16, with Cast nodes inserted
around the nodes it is told to keep in float32); the graph's inputs and outputs stay float32, so callers
feed the same arrays as for fp32.

Not every tensor can be fp16: fp16 overflows past 65504, and a 256-px box already has an area of 65536;
4096-px coordinates are spaced 4 px apart in fp16. The policy, :func:`float32_nodes`:

* **Pixel-scale tensors stay float32.** Box coordinates (by default :func:`pixel_inputs`: float graph
  inputs shaped ``[..., 4]`` and named like the catalog's box inputs; ``pixel=`` names others) and everything computed from them: widths,
  areas, products, sums, enclosing boxes, squared distances. A ``Div`` of two such quantities is
  dimensionless (IoU, ``ρ²/c²``, the aspect ratio) and its output may be fp16.
* **Scores stay float32** (by default :func:`score_inputs`: float graph inputs named like ``scores``), and
  everything computed from them, by the same rule: their order and thresholds decide which boxes NMS keeps,
  and fp16's 11 bits turn distinct scores into ties (the catalog's NMS graphs kept other boxes in fp16).
* **Operators in** :data:`FLOAT32_OPS` **run in float32**: reductions and MatMul/Gemm (sums over many
  elements, whose fp16 accumulators lose the small terms and overflow), exponentials and logarithms
  (``exp`` of a logit above 11 overflows fp16). Outputs of the summing and exponential ones are
  pixel-scale for the rule above (they stay float32 until a Div brings them back to a ratio).
* onnxconverter-common's own block list (operators without fp16 kernels in some runtimes: TopK,
  CumSum, Min, Max, Range, NonMaxSuppression...) stays float32 as well.
* **Casts from integers and booleans to float stay float32** (exact up to 2^24, where fp16 is exact only
  up to 2048). The converter would otherwise pair an fp16 ``Cast`` of a mask or an index with the
  ``Cast`` back to float32 it puts before a float32 consumer, and remove both: the consumer would then
  read the boolean or int64 tensor itself (``ReduceSum`` of a bool, ``Add`` of float and int64). A cast
  of an integer is pixel-scale for the propagation rule (counts and indices can pass 2048); a cast of a
  boolean (0 or 1) is not, unless the boolean itself compares pixel-scale values.

* **Float constants keep their float32 value for float32 readers** (fp16 would round box eps = 1e-7 to 1.19e-7,
  8 % of IoU on boxes 1e-4 wide); fp16 readers get the fp16 rounding (:func:`_exact_float32_constants`).

Everything else (elementwise arithmetic on ratios, probabilities and normalised features) computes in
fp16. The fp16 tolerance of verification is ``exportloss.trt.runner.FP16_TOLERANCE``.

:func:`to_float16` checks what it wrote (the ONNX checker with strict shape and type inference): it
returns a valid graph or raises :class:`Float16Refused` with one line naming the graph, the node and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import TensorProto

from ..model_files import METADATA_GRAPH
from ..onnx_graph import metadata, producers, tensor_dims, typed_values

FLOAT32_OPS: Mapping[str, str] = {
    **dict.fromkeys(("ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceProd",
                     "CumSum", "MatMul", "Gemm", "Einsum"), "sum over many elements"),
    **dict.fromkeys(("Exp", "Log", "Softplus", "Softmax", "LogSoftmax", "ReduceLogSumExp", "ReduceLogSum", "Pow"),
                    "exponential or logarithm of large values"),
}
"""Operators that always compute in float32, with the reason."""

LARGE_OUTPUT_OPS = frozenset({"ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceProd", "CumSum", "MatMul", "Gemm",
                              "Einsum", "Exp", "Pow"})
"""Operators of :data:`FLOAT32_OPS` whose outputs can exceed fp16's range: pixel-scale for the propagation rule."""

SCALE_FREE_OPS = frozenset({"Div"})
"""A ratio of two pixel-scale tensors is dimensionless: its output may be fp16."""

FP16_MIN_SUBNORMAL = 5.960464477539063e-08
FP16_MAX = 65504.0

FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16})


class Float16Refused(ValueError):
    """The fp16 rewrite of a graph would not be a valid graph; the message is one line naming the graph and why."""

    def __init__(self, graph: str, reason: str) -> None:
        super().__init__(f"{graph}: {reason}")
        self.graph, self.reason = graph, reason


BOX_INPUT_NAME = re.compile(r"box|^pred$|^target$|^anchors$")
"""Names the catalog gives box inputs: ``boxes1``, ``boxes``, ``gt_boxes``, ``pred_boxes``, ``pred``, ``target``, ``anchors``."""


def pixel_inputs(model: onnx.ModelProto) -> list[str]:
    """Box coordinates, in pixels: float graph inputs shaped ``[..., 4]`` named like :data:`BOX_INPUT_NAME`."""
    names = []
    for value in model.graph.input:
        dims = tensor_dims(value)
        if (value.type.tensor_type.elem_type == TensorProto.FLOAT and dims and dims[-1] == 4
                and BOX_INPUT_NAME.search(value.name)):
            names.append(value.name)
    return names


def _value_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor the graph names, after shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    return {value.name: value.type.tensor_type.elem_type for value in typed_values(inferred.graph)}


SCORE_INPUT_NAME = re.compile(r"score")
"""Names the catalog gives score inputs: ``scores``."""


def score_inputs(model: onnx.ModelProto) -> list[str]:
    """Detection scores: float graph inputs named like :data:`SCORE_INPUT_NAME`."""
    return [value.name for value in model.graph.input
            if value.type.tensor_type.elem_type == TensorProto.FLOAT and SCORE_INPUT_NAME.search(value.name)]


def float32_nodes(model: onnx.ModelProto, pixel: Iterable[str] | None = None) -> dict[str, str]:
    """Names of the nodes the policy keeps in float32, each with its reason (see the module docstring).

    ``pixel`` names the inputs that stay float32 with everything computed from them (default: the box
    coordinates of :func:`pixel_inputs` and the scores of :func:`score_inputs`).
    """
    scaled = set([*pixel_inputs(model), *score_inputs(model)] if pixel is None else pixel)
    types = _value_types(model)
    kept: dict[str, str] = {}
    for node in model.graph.node:  # topological order, as the ONNX spec requires
        source = types.get(node.input[0]) if node.op_type == "Cast" and node.input else None
        if source is not None and source not in FLOAT_TYPES and _cast_to(node) == TensorProto.FLOAT:
            kept[node.name] = "cast of an integer or boolean"
            if source != TensorProto.BOOL or node.input[0] in scaled:
                scaled.update(node.output)
        elif node.op_type in FLOAT32_OPS:
            kept[node.name] = FLOAT32_OPS[node.op_type]
            if node.op_type in LARGE_OUTPUT_OPS or any(i in scaled for i in node.input):
                scaled.update(node.output)
        elif any(i in scaled for i in node.input):
            kept[node.name] = "pixel-scale or large input"
            if node.op_type not in SCALE_FREE_OPS:
                scaled.update(node.output)
    return kept


def to_float16(model: onnx.ModelProto, pixel: Iterable[str] | None = None) -> onnx.ModelProto:
    """A copy of ``model`` computing in float16 where the policy allows, with float32 inputs and outputs.

    ``pixel`` names the graph inputs that stay float32 (default: :func:`pixel_inputs` and :func:`score_inputs`). Raises
    :class:`Float16Refused` (one line) when the result would not pass the ONNX checker.
    """
    converted = _convert(model, pixel)
    try:
        onnx.checker.check_model(converted, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        name = metadata(model).get(METADATA_GRAPH) or model.graph.name or "the graph"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise Float16Refused(name, f"the fp16 rewrite gives an invalid graph ({first}); build it in fp32") from None
    return converted


def _convert(model: onnx.ModelProto, pixel: Iterable[str] | None) -> onnx.ModelProto:
    from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    named = onnx.ModelProto()
    named.CopyFrom(model)
    taken = {node.name for node in named.graph.node}
    for index, node in enumerate(named.graph.node):
        if not node.name:  # the block list names nodes
            node.name = next(f"{node.op_type}_{index}_{n}" for n in range(len(taken) + 1)
                             if f"{node.op_type}_{index}_{n}" not in taken)
            taken.add(node.name)
    kept = float32_nodes(named, pixel)
    blocked = {*DEFAULT_OP_BLOCK_LIST, *FLOAT32_OPS}
    for node in named.graph.node:
        # The converter retypes the output of an fp16 ``Cast(to=FLOAT)`` but leaves its ``to``: do it here.
        if node.op_type == "Cast" and node.name not in kept and _cast_to(node) == TensorProto.FLOAT:
            next(attr for attr in node.attribute if attr.name == "to").i = TensorProto.FLOAT16
        if node.op_type == "Constant":
            _constant_to_tensor(node)
    converted = convert_float_to_float16(
        named, keep_io_types=True, op_block_list=sorted(blocked),
        node_block_list=list(kept), min_positive_val=FP16_MIN_SUBNORMAL, max_finite_val=FP16_MAX,
        check_fp16_ready=False,  # the Cast rewrite above makes the float32 model look half-converted
    )
    _float32_outputs(converted.graph, {o.name for o in model.graph.output if o.type.tensor_type.elem_type == TensorProto.FLOAT})
    _exact_float32_constants(converted.graph, named.graph, set(kept), blocked)
    _drop_round_trips(converted.graph)
    del converted.graph.value_info[:]  # stale after the rewiring; TensorRT and onnxruntime infer them again
    return converted


def _float32_outputs(graph: onnx.GraphProto, names: set[str]) -> None:
    """Give float32 back to outputs the converter left in fp16 (1.16 does so when a blocked node produces
    the output, despite ``keep_io_types``): the output Cast casts to FLOAT, or a Cast to FLOAT is appended."""
    writers = producers(graph.node)
    for output in graph.output:
        if output.name not in names or output.type.tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        output.type.tensor_type.elem_type = TensorProto.FLOAT
        producer = writers[output.name]
        if producer.op_type == "Cast":
            next(attr for attr in producer.attribute if attr.name == "to").i = TensorProto.FLOAT
            continue
        half = f"{output.name}__fp16"
        producer.output[list(producer.output).index(output.name)] = half
        graph.node.append(onnx.helper.make_node("Cast", [half], [output.name], to=TensorProto.FLOAT,
                                                name=f"{output.name}_to_fp32"))


def _exact_float32_constants(graph: onnx.GraphProto, original: onnx.GraphProto, float32: set[str],
                             blocked: set[str]) -> None:
    """Give every node the original float constant in the type it computes in.

    The converter rounds a float initializer or Constant to fp16 and casts it back for the float32 nodes that read
    it (box eps = 1e-7 became 1.19e-7, fp16's subnormal grid, which moved the IoU of boxes 1e-4 wide, areas ~1e-8,
    by up to 8 %), or keeps it float32 and lets an fp16 node read it as it is (an invalid graph). So each reader
    gets its own: Casts and float32 nodes (``float32`` names, ``blocked`` operator types) the exact float32 value,
    fp16 nodes its fp16 rounding, each as an initializer twin where the graph holds the other type.
    """
    values = {init.name: onnx.numpy_helper.to_array(init) for init in original.initializer
              if init.data_type == TensorProto.FLOAT}
    values.update({node.output[0]: onnx.numpy_helper.to_array(attr.t) for node in original.node
                   if node.op_type == "Constant" for attr in node.attribute
                   if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT})
    held = {init.name: init.data_type for init in graph.initializer}
    held.update({node.output[0]: attr.t.data_type for node in graph.node if node.op_type == "Constant"
                 for attr in node.attribute if attr.name == "value"})
    twins: dict[tuple[str, int], str] = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name not in values or held.get(name) not in (TensorProto.FLOAT, TensorProto.FLOAT16):
                continue
            wants_float32 = node.op_type == "Cast" or node.name in float32 or node.op_type in blocked
            want = TensorProto.FLOAT if wants_float32 else TensorProto.FLOAT16
            if want == held[name]:
                continue
            if (name, want) not in twins:
                twins[name, want] = f"{name}__{'fp32' if want == TensorProto.FLOAT else 'fp16'}"
                array = values[name].astype(np.float32 if want == TensorProto.FLOAT else np.float16)
                graph.initializer.append(onnx.numpy_helper.from_array(array, twins[name, want]))
            node.input[slot] = twins[name, want]
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for init in [init for init in graph.initializer if init.name not in used]:
        graph.initializer.remove(init)


def _drop_round_trips(graph: onnx.GraphProto) -> None:
    """Remove ``Cast(to=FLOAT16) -> Cast(to=FLOAT)`` round trips of float32 tensors.

    The converter wraps every blocked node in casts and removes a pair between two blocked nodes only
    when the tensor has a single consumer (1.16 compares ``to`` with 16/32 instead of FLOAT16/FLOAT for
    several consumers), so a float32 area read twice would round-trip through fp16 and overflow.
    """
    inferred = onnx.shape_inference.infer_shapes(onnx.helper.make_model(graph))
    types = {value.name: value.type.tensor_type.elem_type for value in typed_values(inferred.graph)}
    writers = producers(graph.node)
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "Cast" or _cast_to(node) != TensorProto.FLOAT:
            continue
        source = writers.get(node.input[0])
        if source is None or source.op_type != "Cast" or _cast_to(source) != TensorProto.FLOAT16:
            continue
        if types.get(source.input[0]) == TensorProto.FLOAT:
            if node.output[0] in outputs:
                node.input[0] = source.input[0]  # the graph output keeps its name: a float32 -> float32 Cast
            else:
                rename[node.output[0]] = source.input[0]
    for node in graph.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if n.op_type == "Cast" and not any(out in used for out in n.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def _constant_to_tensor(node: onnx.NodeProto) -> None:
    """``Constant(value_float(s)=...)`` always outputs float32 and the converter skips it: make it a ``value`` tensor."""
    for index, attr in enumerate(node.attribute):
        if attr.name in ("value_float", "value_floats"):
            array = np.array(attr.f if attr.name == "value_float" else list(attr.floats), dtype=np.float32)
            del node.attribute[index]
            node.attribute.append(onnx.helper.make_attribute("value", onnx.numpy_helper.from_array(array, "value")))
            return


def _cast_to(node: onnx.NodeProto) -> int:
    return next(attr.i for attr in node.attribute if attr.name == "to")
