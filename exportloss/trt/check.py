"""Static TensorRT compatibility check of an ONNX graph against the parser's support table.

Nothing in TensorRT runs without a CUDA device, so on CPU machines this is the only gate. The check
walks every node, including Loop / If bodies and model-local functions, and reports each node whose
operator the table marks unsupported (or does not list), or that breaks a restriction the table states:

=====================  ==============================================================================
rule                   what is checked
=====================  ==============================================================================
``opset``              the default-domain opset is inside the version's range
``unsupported-op``     the operator is listed with ``Y``
``constant-input``     Reduce* / Slice / Pad ``axes``, CumSum ``axis`` are initializers (or Constant
                       outputs); Squeeze / Unsqueeze ``axes`` likewise at 10.1 and resolvable to a
                       constant from 10.15; OneHot ``depth`` and TopK ``K`` are build-time constants
                       and TopK's ``K`` < 3840
``attribute``          TopK ``sorted`` == 1, ScatterND ``reduction`` == ``none``
``plugin``             ScatterElements with a reduction (runs through TensorRT's plugin); operators of
                       custom domains (need a plugin of that name)
``if-branches``        both branches' outputs have the same rank and different names
``loop``               scan outputs have a build-time trip count (no early exit); loop-carried values
                       keep their shape across iterations
``first-output-only``  MaxPool / LayerNormalization use only their first output
``forbidden-attr``     Constant uses no sparse or string value
``double``             no DOUBLE tensor (TensorRT casts it down to FLOAT, clamping at +-FLT_MAX)
``dynamic-input``      every input with a dynamic dimension has an optimization profile
``unchecked``          restrictions of the table that are not checked statically (a note)
=====================  ==============================================================================

A "build-time constant" is an initializer, a Constant output, the Shape / Size of a tensor whose shape
shape inference fixes, or a deterministic node computed from build-time constants only (its value is
evaluated with ``onnx.reference``). Severities: ``error`` makes the graph incompatible; ``plugin``,
``warning`` (a restriction that cannot be proved statically) and ``note`` do not.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..onnx_graph import (
    DEFAULT_DOMAINS,
    default_opset,
    format_dims,
    input_dims,
    iter_nodes,
    local_functions,
    producers,
    subgraphs,
    tensor_dims,
    typed_values,
)
from .profiles import ShapeRange, fit_profile
from .support import DEFAULT_TRT_VERSION, TRT_VERSIONS, SupportTable, load_support

SEVERITIES = ("error", "plugin", "warning", "note")
NOT_FOLDABLE = frozenset({
    "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli",
    "Dropout", "If", "Loop", "Scan",
})
"""Operators whose outputs are not fixed by their inputs, or that hold subgraphs: never folded."""
FOLD_LIMIT = 1 << 16
"""Largest input (elements) the checker evaluates while resolving a build-time constant."""


@dataclass(frozen=True)
class Finding:
    """One violated (or unprovable) rule at one node, or at the graph when ``node`` is empty."""

    rule: str
    severity: str
    message: str
    node: str = ""
    op: str = ""
    where: str = "graph"
    """``graph`` for the main graph, ``graph/LOOP_NODE.body`` for a subgraph."""

    def __str__(self) -> str:
        at = f"{self.where}: {self.node} ({self.op})" if self.node else self.where
        return f"{self.severity} [{self.rule}] {at}: {self.message}"


@dataclass
class TrtReport:
    """The static check of one graph against one TensorRT version."""

    graph: str
    trt_version: str
    opset: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def compatible(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def by_severity(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def verdict(self) -> str:
        """``PASS``, ``PASS (1 plugin, 2 notes)`` or ``FAIL (3 errors)``."""
        if self.errors:
            return f"FAIL ({_count(len(self.errors), 'error')})"
        extra = [_count(len(self.by_severity(s)), s) for s in SEVERITIES[1:] if self.by_severity(s)]
        return f"PASS ({', '.join(extra)})" if extra else "PASS"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_model(
    model: onnx.ModelProto | str | os.PathLike,
    trt_version: str = DEFAULT_TRT_VERSION,
    profile: Mapping[str, ShapeRange] | None = None,
    name: str | None = None,
) -> TrtReport:
    """Check ``model`` (a ModelProto or a path) against TensorRT ``trt_version``'s parser table.

    ``profile`` gives the optimization profile the engine would be built with; inputs with dynamic
    dimensions and no range are findings. Raises ``ValueError`` for an unknown version or a profile
    that does not fit the model's inputs.
    """
    return check_versions(model, (trt_version,), profile, name)[0]


def check_versions(
    model: onnx.ModelProto | str | os.PathLike,
    trt_versions: Iterable[str] = TRT_VERSIONS,
    profile: Mapping[str, ShapeRange] | None = None,
    name: str | None = None,
) -> list[TrtReport]:
    """:func:`check_model` for several TensorRT versions, sharing shape inference and constant folding."""
    if not isinstance(model, onnx.ModelProto):
        path = Path(model)
        model = onnx.load(str(path))
        name = name or path.stem
    tables = [load_support(version) for version in trt_versions]
    analysis = _Analysis(model, name or model.graph.name or "model", dict(profile or {}))
    return [analysis.report(table) for table in tables]


class _Scope:
    """Names visible in one graph (inner graphs see outer names) and which of them are build-time constants."""

    def __init__(self, graph: onnx.GraphProto, parent: _Scope | None, analysis: _Analysis):
        self.graph = graph
        self.parent = parent
        self.analysis = analysis
        self.initializers = {init.name: init for init in graph.initializer}
        self.producers = producers(graph.node)
        self.runtime = {value.name for value in graph.input if value.name not in self.initializers}
        self.constants: set[str] = set(self.initializers)
        self._values: dict[str, np.ndarray | None] = {}
        for node in graph.node:
            if self._node_is_constant(node):
                self.constants.update(out for out in node.output if out)

    def _owns(self, name: str) -> bool:
        return name in self.initializers or name in self.producers or name in self.runtime

    def _resolve(self, name: str) -> _Scope | None:
        scope = self
        while scope is not None and not scope._owns(name):
            scope = scope.parent
        return scope

    def is_constant(self, name: str) -> bool:
        scope = self._resolve(name)
        return scope is not None and name in scope.constants

    def is_initializer(self, name: str) -> bool:
        """An initializer or a Constant node's output: what the parser holds as weights."""
        scope = self._resolve(name)
        if scope is None:
            return False
        node = scope.producers.get(name)
        return name in scope.initializers or (node is not None and node.op_type == "Constant")

    def producer(self, name: str) -> onnx.NodeProto | None:
        scope = self._resolve(name)
        return scope.producers.get(name) if scope else None

    def _node_is_constant(self, node: onnx.NodeProto) -> bool:
        if node.domain not in DEFAULT_DOMAINS or node.op_type in NOT_FOLDABLE:
            return False
        if node.op_type == "Constant":
            return True
        if node.op_type in ("Shape", "Size"):
            return self.analysis.static_shape(node.input[0]) is not None
        if any(subgraphs(node)):
            return False
        return all(not name or self.is_constant(name) for name in node.input)

    def value(self, name: str) -> np.ndarray | None:
        """The value of a build-time constant, or None when it is not one or cannot be evaluated."""
        scope = self._resolve(name)
        if scope is None or name not in scope.constants:
            return None
        if name not in scope._values:
            scope._values[name] = scope._compute(name)
        return scope._values[name]

    def _compute(self, name: str) -> np.ndarray | None:
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producers[name]
        attrs = {attr.name: attr for attr in node.attribute}
        if node.op_type == "Shape":
            shape = self.analysis.static_shape(node.input[0])
            start = attrs["start"].i if "start" in attrs else 0
            end = attrs["end"].i if "end" in attrs else len(shape)
            return np.array(shape[start:end], dtype=np.int64)
        if node.op_type == "Size":
            return np.array(int(np.prod(self.analysis.static_shape(node.input[0]))), dtype=np.int64)
        inputs = [self.value(i) if i else None for i in node.input]
        if any(i and v is None for i, v in zip(node.input, inputs)) or any(v is not None and v.size > FOLD_LIMIT for v in inputs):
            return None
        return self.analysis.evaluate(node, inputs, name)


class _Analysis:
    """Shape inference, scopes and constant folding of one model, shared by every table it is checked against."""

    def __init__(self, model: onnx.ModelProto, name: str, profile: dict[str, ShapeRange]):
        self.name = name
        self.model = model
        self.profile = profile
        self.opset = default_opset(model)
        try:
            self.inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError):
            self.inferred = model
        self.types = {value.name: value.type for value in typed_values(self.inferred.graph)}
        self.functions = local_functions(model)
        self.dims = input_dims(model)
        self.missing_profile = fit_profile(self.dims, profile)

    def static_shape(self, name: str) -> tuple[int, ...] | None:
        dims = self.dims_of(name)
        return None if dims is None or None in dims else dims

    def dims_of(self, name: str) -> tuple[int | None, ...] | None:
        """Dimensions shape inference found for ``name`` (None for a dynamic one), or None without a shape."""
        tensor_type = self.types.get(name)
        return None if tensor_type is None else tensor_dims(tensor_type)

    def evaluate(self, node: onnx.NodeProto, inputs: list[np.ndarray | None], output: str) -> np.ndarray | None:
        from onnx.reference import ReferenceEvaluator

        feeds = {name: value for name, value in zip(node.input, inputs) if name}
        graph = onnx.helper.make_graph(
            [node], "fold",
            [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()],
            [onnx.helper.make_empty_tensor_value_info(output)],
        )
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", self.opset)])
        try:
            return np.asarray(ReferenceEvaluator(model).run(None, feeds)[0])
        except Exception:  # noqa: BLE001 - anything onnx.reference cannot evaluate is simply not resolved
            return None

    @cached_property
    def main_scope(self) -> _Scope:
        return _Scope(self.inferred.graph, None, self)

    def report(self, table: SupportTable) -> TrtReport:
        report = TrtReport(self.name, table.tensorrt, self.opset)
        add = report.findings.append
        if not table.opset_min <= self.opset <= table.opset_max:
            add(Finding("opset", "error", f"opset {self.opset} is outside TensorRT {table.tensorrt}'s range "
                                          f"{table.opset_min}-{table.opset_max}"))
        for name in self.missing_profile:
            add(Finding("dynamic-input", "error", f"input {name!r} has dynamic dimensions "
                                                  f"[{format_dims(self.dims[name])}] and no optimization profile"))
        self._double_tensors(add)
        noted: set[tuple[str, str]] = set()
        _NodeChecker(self, table, add, noted).graph(self.main_scope, "graph")
        return report

    def _double_tensors(self, add) -> None:
        writers = producers(iter_nodes(self.inferred.graph))
        for name, tensor_type in self.types.items():
            if tensor_type.tensor_type.elem_type == onnx.TensorProto.DOUBLE:
                node = writers.get(name)
                add(Finding("double", "error", f"tensor {name!r} is DOUBLE; TensorRT casts it down to FLOAT, "
                                               "clamping at +-FLT_MAX", *_label(node) if node else ("", "")))




def _label(node: onnx.NodeProto, index: int | None = None) -> tuple[str, str]:
    return node.name or f"{node.op_type}#{index if index is not None else '?'}", node.op_type


def _attribute_value(node: onnx.NodeProto, name: str, opset: int):
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    default = onnx.defs.get_schema(node.op_type, opset, "").attributes[name].default_value
    if not default.name:
        return None
    value = onnx.helper.get_attribute_value(default)
    return value.decode() if isinstance(value, bytes) else value


class _NodeChecker:
    """Applies one support table's rules to every node of a graph and its subgraphs."""

    def __init__(self, analysis: _Analysis, table: SupportTable, add, noted: set[tuple[str, str]]):
        self.analysis = analysis
        self.table = table
        self.add = add
        self.noted = noted

    def graph(self, scope: _Scope, where: str, nodes: Iterable[onnx.NodeProto] | None = None) -> None:
        for index, node in enumerate(scope.graph.node if nodes is None else nodes):
            self.node(node, index, scope, where)

    def node(self, node: onnx.NodeProto, index: int, scope: _Scope, where: str) -> None:
        label, op = _label(node, index)

        def add(rule: str, severity: str, message: str) -> None:
            self.add(Finding(rule, severity, message, label, op, where))

        if node.domain not in DEFAULT_DOMAINS:
            function = self.analysis.functions.get((node.domain, node.op_type))
            if function is not None:
                self.graph(scope, f"{where}/{label}", function.node)
            elif node.domain == "ai.onnx.ml":
                add("unsupported-op", "error", f"{node.domain}::{op} is not an operator TensorRT's ONNX parser supports")
            else:
                add("plugin", "plugin", f"custom operator {node.domain}::{op} builds only with a TensorRT plugin of that name")
            return
        support = self.table.get(op)
        if support is None:
            add("unsupported-op", "error", f"{op} is not in TensorRT {self.table.tensorrt}'s operator table")
            return
        if not support.supported:
            add("unsupported-op", "error", f"{op} is not supported by TensorRT {self.table.tensorrt}'s ONNX parser")
            return
        for check in support.checks:
            getattr(self, f"_{check['rule']}")(node, scope, check, add)
        for sentence in support.unchecked:
            if (op, sentence) not in self.noted:
                self.noted.add((op, sentence))
                add("unchecked", "note", f"not checked statically: {sentence}")
        for attribute, sub in subgraphs(node):
            self.graph(_Scope(sub, scope, self.analysis), f"{where}/{label}.{attribute}")

    def _constant_input(self, node, scope: _Scope, check, add) -> None:
        formal = [f.name for f in onnx.defs.get_schema(node.op_type, self.analysis.opset, "").inputs]
        if check["input"] not in formal:
            return  # an attribute at this opset, hence constant
        position = formal.index(check["input"])
        if position >= len(node.input) or not node.input[position]:
            return
        name, what = node.input[position], f"`{check['input']}` input"
        if check["level"] == "initializer" and not scope.is_initializer(name):
            add("constant-input", "error", f"{what} {name!r} must be an initializer or Constant for TensorRT "
                                           f"{self.table.tensorrt}; here it is computed by other nodes")
        elif check["level"] == "build_time" and not scope.is_constant(name):
            add("constant-input", "error", f"{what} {name!r} must be a build-time constant; here it depends on graph inputs")
        elif "below" in check:
            value = scope.value(name)
            if value is None:
                add("constant-input", "warning", f"{what} {name!r} is constant but could not be evaluated to check "
                                                 f"that it is below {check['below']}")
            elif value.size and int(np.max(value)) >= check["below"]:
                add("constant-input", "error", f"{what} is {int(np.max(value))}; TensorRT needs it below {check['below']}")

    def _attribute(self, node, scope, check, add) -> None:
        value = _attribute_value(node, check["attribute"], self.analysis.opset)
        if value not in check["allowed"]:
            allowed = " or ".join(map(repr, check["allowed"]))
            if check["severity"] == "plugin":
                add("plugin", "plugin", f"{check['attribute']}={value!r}: {check['why']}, which must be loaded at build and run time")
            else:
                add("attribute", "error", f"{check['attribute']}={value!r} is not supported; TensorRT needs {allowed}")

    def _forbidden_attributes(self, node, scope, check, add) -> None:
        used = [attr.name for attr in node.attribute if attr.name in check["attributes"]]
        if used:
            add("forbidden-attr", "error", f"attribute {used[0]!r} is not supported by TensorRT's parser")

    def _first_output_only(self, node, scope, check, add) -> None:
        if any(node.output[1:]):
            add("first-output-only", "error", "only the first output is supported; this node uses "
                                              f"{', '.join(repr(o) for o in node.output[1:] if o)}")

    def _if_branches(self, node, scope, check, add) -> None:
        branches = {attr.name: attr.g for attr in node.attribute if attr.type == onnx.AttributeProto.GRAPH}
        then_outputs, else_outputs = branches["then_branch"].output, branches["else_branch"].output
        for i, (a, b) in enumerate(zip(then_outputs, else_outputs)):
            if a.name == b.name:
                add("if-branches", "error", f"output {i} of both branches is named {a.name!r}; TensorRT needs different names")
            ranks = [self._rank(value) for value in (a, b)]
            if None in ranks:
                add("if-branches", "warning", f"the rank of output {i} of a branch is unknown; TensorRT needs equal ranks")
            elif ranks[0] != ranks[1]:
                add("if-branches", "error", f"output {i} has rank {ranks[0]} in then_branch and {ranks[1]} in else_branch; "
                                            "TensorRT needs equal ranks")

    def _rank(self, value: onnx.ValueInfoProto) -> int | None:
        dims = self.analysis.dims_of(value.name)
        if dims is None and value.type.tensor_type.HasField("shape"):
            dims = tuple(value.type.tensor_type.shape.dim)
        return None if dims is None else len(dims)

    def _loop_static(self, node, scope: _Scope, check, add) -> None:
        body = next(attr.g for attr in node.attribute if attr.name == "body")
        carried = len(node.input) - 2
        scan_outputs = len(body.output) - 1 - carried
        if scan_outputs > 0:
            trip_count = node.input[0] if node.input else ""
            if not trip_count or not scope.is_constant(trip_count):
                add("loop", "error", f"{scan_outputs} scan output(s) but the trip count is not a build-time constant: "
                                     "TensorRT cannot have a scan output of dynamic length")
            elif not self._runs_to_trip_count(node, body, scope):
                add("loop", "error", "the loop can stop before its trip count (its condition is not constantly true), "
                                     "so its scan outputs have a dynamic length")
        for i in range(carried):
            initial = self.analysis.dims_of(node.input[2 + i])
            after = self.analysis.dims_of(body.output[1 + i].name)
            if initial is None or after is None or None in initial or None in after:
                add("loop", "warning", f"loop-carried value {i} ({node.input[2 + i]!r}): shape inference cannot show that "
                                       "its shape stays the same across iterations")
            elif initial != after:
                add("loop", "error", f"loop-carried value {i} ({node.input[2 + i]!r}) changes shape from "
                                     f"{list(initial)} to {list(after)} in one iteration")

    def _runs_to_trip_count(self, node, body: onnx.GraphProto, scope: _Scope) -> bool:
        """True when the body's condition output is constantly true, or passes on a true (or absent) condition."""
        body_scope = _Scope(body, scope, self.analysis)
        condition = body.output[0].name
        value = body_scope.value(condition)
        if value is not None:
            return bool(np.all(value))
        producer = body_scope.producer(condition)
        while producer is not None and producer.op_type == "Identity":
            condition = producer.input[0]
            producer = body_scope.producer(condition)
        if condition != body.input[1].name:
            return False
        initial = node.input[1] if len(node.input) > 1 else ""
        if not initial:
            return True
        value = scope.value(initial)
        return value is not None and bool(np.all(value))
