"""Reading ONNX models: the one place that walks nodes and reads inputs, opsets, metadata and tensor specs.

Every checker (:mod:`exportloss.graph_checks`, :mod:`exportloss.trt.check`, :mod:`exportloss.ort_cuda.check`),
the exporter, the verifier, the model-file checks and the fp16 conversion read models through these
functions, so that all of them see the same nodes: those of the main graph, of the subgraphs that
``If``/``Loop``/``Scan`` carry as attributes (:func:`iter_nodes`), and of the model-local functions
(:func:`model_nodes`; checkers that report where a node sits descend into a called function through
:func:`local_functions` and into subgraphs through :func:`subgraphs`).

Dimensions are ``int`` for a static extent and ``None`` for a dynamic one (a ``dim_param`` or an unset
dimension; for graph inputs also a non-positive value, which old exporters write for a dynamic extent).
The default domain is ``""``; ``"ai.onnx"`` is read as its alias.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

Dims = tuple[int | None, ...]
"""A tensor's dimensions: an int for a static extent, None for a dynamic one."""

DEFAULT_DOMAINS = ("", "ai.onnx")
"""The names of ONNX's default operator domain."""

FunctionKey = tuple[str, str]
"""How a node calls a model-local function: ``(node.domain, node.op_type)`` = ``(function.domain, function.name)``."""


# --- nodes ---------------------------------------------------------------------------------------------

def subgraphs(node: onnx.NodeProto) -> Iterable[tuple[str, onnx.GraphProto]]:
    """The graphs ``node`` carries as attributes (``If`` branches, ``Loop``/``Scan`` bodies), with the attribute name."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.name, attr.g
        for graph in attr.graphs:
            yield attr.name, graph


def iter_nodes(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    """Every node of ``graph`` and of its subgraphs, each node before the nodes of its own subgraphs."""
    for node in graph.node:
        yield node
        for _, sub in subgraphs(node):
            yield from iter_nodes(sub)


def local_functions(model: onnx.ModelProto) -> dict[FunctionKey, onnx.FunctionProto]:
    """The model-local functions, keyed the way a calling node names them (:data:`FunctionKey`)."""
    return {(function.domain, function.name): function for function in model.functions}


def model_nodes(model: onnx.ModelProto) -> Iterable[onnx.NodeProto]:
    """Every node of the model: the main graph and its subgraphs, then the bodies of the local functions
    (and their subgraphs). A call of a local function is itself a node, under the function's name."""
    yield from iter_nodes(model.graph)
    for function in model.functions:
        for node in function.node:
            yield node
            for _, sub in subgraphs(node):
                yield from iter_nodes(sub)


def producers(nodes: Iterable[onnx.NodeProto]) -> dict[str, onnx.NodeProto]:
    """The node that writes each tensor name (omitted optional outputs left out), over ``nodes``
    (``graph.node`` for one level, :func:`iter_nodes` for subgraphs too)."""
    return {output: node for node in nodes for output in node.output if output}


# --- tensors -------------------------------------------------------------------------------------------

def typed_values(graph: onnx.GraphProto) -> Iterable[onnx.ValueInfoProto]:
    """A value info for every typed tensor the graph names: inputs, value_info, outputs, initializers and
    ``Constant`` tensors, in this graph and its subgraphs."""
    yield from graph.input
    yield from graph.value_info
    yield from graph.output
    for init in graph.initializer:
        yield onnx.helper.make_tensor_value_info(init.name, init.data_type, init.dims)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    yield onnx.helper.make_tensor_value_info(node.output[0], attr.t.data_type, attr.t.dims)
        for _, sub in subgraphs(node):
            yield from typed_values(sub)


def tensor_dims(value: onnx.ValueInfoProto | onnx.TypeProto) -> Dims | None:
    """The dimensions of a tensor value (or its type); None when the type carries no shape (unknown rank)."""
    tensor_type = (value.type if isinstance(value, onnx.ValueInfoProto) else value).tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return tuple(dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim)


def dtype_name(value: onnx.ValueInfoProto) -> str:
    """The numpy name of a tensor value's element type (``"float32"``, ``"int64"``), ``"?"`` when unset."""
    elem_type = value.type.tensor_type.elem_type
    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name if elem_type else "?"


def tensor_specs(values: Iterable[onnx.ValueInfoProto]) -> list[dict]:
    """``[{"name", "shape", "dtype"}]`` for tensor values, as the manifest records them (a dynamic
    dimension by its ``dim_param``)."""
    specs = []
    for value in values:
        shape = [dim.dim_value if dim.HasField("dim_value") else dim.dim_param for dim in value.type.tensor_type.shape.dim]
        specs.append({"name": value.name, "shape": shape, "dtype": dtype_name(value)})
    return specs


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph's real inputs: initializers that old exporters also list as inputs are left out."""
    initializers = {init.name for init in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def input_dims(model: onnx.ModelProto) -> dict[str, Dims]:
    """The dimensions of each real input (:func:`graph_inputs`), None for a dynamic one (a non-positive
    extent included)."""
    return {value.name: tuple(None if extent is None or extent <= 0 else extent for extent in tensor_dims(value) or ())
            for value in graph_inputs(model)}


def static_input_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """The shape of each real input whose every dimension is static (inputs with a dynamic one are left out)."""
    return {name: extents for name, extents in input_dims(model).items() if None not in extents}  # type: ignore[misc]


def format_dims(extents: Dims) -> str:
    """``(2, None, 4)`` -> ``"2x?x4"``."""
    return "x".join("?" if extent is None else str(extent) for extent in extents)


# --- model-level facts ---------------------------------------------------------------------------------

def opsets(model: onnx.ModelProto) -> dict[str, int]:
    """The imported opset version of each domain, the default domain under ``""``."""
    versions = {}
    for opset in model.opset_import:
        versions["" if opset.domain in DEFAULT_DOMAINS else opset.domain] = opset.version
    return versions


def default_opset(model: onnx.ModelProto) -> int:
    """The opset of the default domain (1, the ONNX default, when the model imports none)."""
    return opsets(model).get("", 1)


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The model's ``metadata_props`` as a mapping."""
    return {prop.key: prop.value for prop in model.metadata_props}

