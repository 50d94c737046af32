"""Row tiles of an exported graph's elementwise ``N × M`` chain: Split + one copy of the chain per tile + Concat.

Why at the ONNX level: the pairwise graphs cut their ``N × M`` planes into row tiles so that each tile's
chain runs while its planes are cache-resident (see :mod:`exportloss.boxes.iou`). Traced per tile, the exporter
and its optimizer pay for every tile's nodes (20 s for a 3000² CIoU graph); traced once and copied here,
a tiled export costs about what the untiled one does, and every copy is node for node the untiled chain.

Data path: :func:`~exportloss.ops.tile_plans.recording_tile_plans` is open while :mod:`exportloss.export`
traces a module; the pairwise functions then compute untiled and record their plan ``{(N, M): rows}``;
:func:`tile_planes` applies each plan to the exported model. Outside such a context (eager, or a direct
``torch.onnx.export``) they tile in torch.

Which nodes are tiled: every elementwise node (:data:`ROW_WISE_OPS`) whose outputs are ``[..., N, M]``
planes, whose inputs are available before the chain or come from tiled nodes. An input with ``N`` rows
(a ``[..., N, 1]`` column of per-box terms, or a plane) is Split into the tiles; a broadcast input (``[..., 1,
M]`` rows of per-box terms, scalars) is shared by every tile. Per-box terms are therefore computed once,
before the Split, and a tile holds only the pairwise steps. A tiled tensor that a later node or the graph's
output reads is rebuilt with one Concat under its original name. Every element is computed by the same
operators on the same operands as in the untiled graph, so the results are bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .onnx_graph import default_opset, tensor_dims
from .ops.tile_plans import TilePlans

ROW_WISE_OPS = frozenset({
    "Abs", "Add", "Clip", "Div", "Exp", "Log", "Max", "Min", "Mul", "Neg", "Pow", "Reciprocal", "Relu", "Sqrt", "Sub",
})
"""The operators a tile copies: elementwise arithmetic (with numpy broadcasting), so row ``i`` of an output
depends only on row ``i`` of each input. They are what the pairwise functions' chains are made of;
comparisons, logic and casts that follow a chain (NMS's suppression masks, an fp16 result's Cast) read the
concatenated planes, as in the functions' torch-level tiling."""

def tile_planes(model: onnx.ModelProto, plans: TilePlans) -> onnx.ModelProto:
    """``model`` with each plan's ``[..., N, M]`` elementwise chain computed on row tiles (module docstring).

    ``model`` needs static shapes (it is shape-inferred here) and opset 13 or newer (Split's sizes input; the
    dynamo exporter writes 18 and newer). The TorchScript exporter records no plans: its traced sizes are not
    Python ints, so its pairwise graphs stay untiled. Plans with ``rows >= N`` change nothing.
    """
    opset = default_opset(model)
    if plans and opset < 13:
        raise ValueError(f"row tiles need opset 13 or newer; the model has opset {opset}")
    for (n, m), rows in sorted(plans.items()):
        if rows < n:
            model = _tile(onnx.shape_inference.infer_shapes(model), n, m, rows)
    return model


def _tile(model: onnx.ModelProto, n: int, m: int, rows: int) -> onnx.ModelProto:
    graph = model.graph
    shapes = {value.name: _static_shape(value) for value in (*graph.input, *graph.value_info, *graph.output)}
    shapes.update({init.name: list(init.dims) for init in graph.initializer})

    def is_plane(name: str) -> bool:
        shape = shapes.get(name)
        return shape is not None and len(shape) >= 2 and shape[-2:] == [n, m]

    tiled = _chain(graph, is_plane, lambda name: not name or name in shapes)
    if not tiled:
        return model
    tiled_outputs = {out for i in tiled for out in graph.node[i].output}
    before, after, late = [], [], set(tiled_outputs)
    for i, node in enumerate(graph.node):
        if i in tiled:
            continue
        if any(name in late for name in node.input):
            after.append(node)
            late.update(node.output)
        else:
            before.append(node)

    sizes = [rows] * (n // rows) + ([n % rows] if n % rows else [])
    split_sizes = _unique_name(graph, "row_tile_sizes")
    new_inits = [numpy_helper.from_array(np.array(sizes, dtype=np.int64), split_sizes)]
    splits, split_of = [], {}
    for i in sorted(tiled):
        for name in graph.node[i].input:
            if name and name not in tiled_outputs and name not in split_of and _has_rows(shapes.get(name), n):
                split_of[name] = [f"{name}_tile{t}" for t in range(len(sizes))]
                splits.append(helper.make_node("Split", [name, split_sizes], split_of[name],
                                               axis=len(shapes[name]) - 2, name=f"{name}_row_tiles"))

    value_info = {value.name: value for value in graph.value_info}
    tile_nodes, tile_values = [], []
    for t, height in enumerate(sizes):
        def renamed(name: str) -> str:
            if name in tiled_outputs:
                return f"{name}_tile{t}"
            return split_of[name][t] if name in split_of else name

        for i in sorted(tiled):
            node = onnx.NodeProto()
            node.CopyFrom(graph.node[i])
            node.input[:] = [renamed(name) for name in node.input]
            node.output[:] = [renamed(name) for name in node.output]
            node.name = f"{node.name or node.op_type}_tile{t}"
            tile_nodes.append(node)
            for out in graph.node[i].output:
                if out in value_info:
                    tile_values.append(_with_rows(value_info[out], renamed(out), height))

    read_later = {name for node in after for name in node.input} | {out.name for out in graph.output}
    concats = [
        helper.make_node("Concat", [f"{name}_tile{t}" for t in range(len(sizes))], [name],
                         axis=len(shapes[name]) - 2, name=f"{name}_row_tiles_concat")
        for i in sorted(tiled) for name in graph.node[i].output if name in read_later
    ]
    kept_values = [value for value in graph.value_info if value.name not in tiled_outputs or value.name in read_later]

    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend([*before, *splits, *tile_nodes, *concats, *after])
    out.graph.initializer.extend(new_inits)
    del out.graph.value_info[:]
    out.graph.value_info.extend([*kept_values, *tile_values])
    return out


def _chain(graph: onnx.GraphProto, is_plane: Callable[[str], bool], is_known: Callable[[str], bool]) -> set[int]:
    """Indices of the nodes to tile: row-wise, plane outputs, inputs of known shape, and no input computed
    after the chain."""
    candidates = {
        i for i, node in enumerate(graph.node)
        if node.op_type in ROW_WISE_OPS and node.output and all(is_plane(out) for out in node.output)
        and all(is_known(name) for name in node.input)
    }
    while True:  # drop candidates that read a value computed after the chain (from a tiled output, untiled)
        produced_after: set[str] = set()
        tiled_outputs = {out for i in candidates for out in graph.node[i].output}
        for i, node in enumerate(graph.node):
            if i not in candidates and any(name in tiled_outputs or name in produced_after for name in node.input):
                produced_after.update(node.output)
        blocked = {i for i in candidates if any(name in produced_after for name in graph.node[i].input)}
        if not blocked:
            return candidates
        candidates -= blocked


def _has_rows(shape: list[int] | None, n: int) -> bool:
    return shape is not None and len(shape) >= 2 and shape[-2] == n


def _static_shape(value: onnx.ValueInfoProto) -> list[int] | None:
    dims = tensor_dims(value)
    return None if dims is None or None in dims else list(dims)


def _with_rows(value: onnx.ValueInfoProto, name: str, rows: int) -> onnx.ValueInfoProto:
    copy = onnx.ValueInfoProto()
    copy.CopyFrom(value)
    copy.name = name
    copy.type.tensor_type.shape.dim[-2].dim_value = rows
    return copy


def _unique_name(graph: onnx.GraphProto, base: str) -> str:
    taken = {name for node in graph.node for name in (*node.input, *node.output)}
    taken.update(init.name for init in graph.initializer)
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name
