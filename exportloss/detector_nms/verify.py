"""Verification of a model that ``attach`` joined: the detector's own outputs, greedy NMS in float64, the joined outputs.

The file is read once; both models run come from those bytes: the joined model as written, and the same
model with the detector outputs the NMS reads exposed as extra outputs (nothing else changes). On seeded
inputs (uniform images of the model's input shapes), each backend session runs both; the float64
reference (:mod:`exportloss.detector_nms.reference`: the layout decoded again in numpy, then NMS as loops at
the stamped options: Cluster-NMS at the graph's iteration count, greedy NMS, the flags) is applied to the
exposed detector outputs of that very run, and

* the exposed model's NMS outputs must equal it: the kept (box, class) pairs and their order exactly,
  boxes and scores to the tolerance of float32 decoding;
* the joined model's outputs must equal the exposed model's (same pairs, same order, same tolerance).

The outputs compared are all seven (:class:`~exportloss.detection.nms.Detections` or the ``efficientnms``
convention): ``det_indices`` and the flags ``converged`` and ``num_capped`` exactly. Beyond the reference,
every image whose detections differ from greedy NMS over *all* pairs must be flagged by the graph
(``converged`` false, or ``num_capped > 0`` with fewer than ``max_det`` detections): an unflagged
difference is a failure. Each row's notes say on how many images the kept sets equal greedy NMS over the
graph's top ``candidates`` pairs and over all pairs, how many images the graph flagged (not converged;
pairs capped), the most pairs above ``score_thr``, and the longest suppression chain seen against the
Cluster-NMS iterations.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..backends import Backend, BackendUnavailable, SessionError
from ..catalog import Case, GraphEntry, TensorSpec
from ..model_files import ModelFileError
from ..onnx_graph import dtype_name, graph_inputs, tensor_dims
from ..tolerance import Tolerance
from ..verify import VerifyRow, compare
from .join import AttachStamp, attached_stamp
from .reference import decode, greedy_detections, nms_detections, suppression_stats

TOLERANCE = Tolerance(rtol=1e-6, atol=1e-5)
"""Boxes are decoded in float32 by the graph and in float64 by the reference; scores and classes pass through."""

DEFAULT_IMAGES = 16


@dataclass
class AttachedSummary:
    """What the reference saw over all images of one session."""

    images: int = 0
    equal_top_k: int = 0
    equal_all_pairs: int = 0
    above_cap: int = 0
    not_converged: int = 0
    capped: int = 0
    unflagged: list[str] = field(default_factory=list)
    longest_chain: int = 0
    most_above_score_thr: int = 0
    differing: list[str] = field(default_factory=list)


def is_attached(path: str | Path) -> bool:
    """Whether ``path`` is a model with the ``exportloss.attached`` stamp (read without external data)."""
    try:
        return attached_stamp(onnx.load(str(path), load_external_data=False)) is not None
    except Exception:  # noqa: BLE001 - not a readable model: the catalog path reports it
        return False


def verify_attached(path: str | Path, backend: Backend | None = None, seed: int = 20261128,
                    images: int = DEFAULT_IMAGES) -> list[VerifyRow]:
    """One row for the joined model ``path`` on ``backend`` (default: onnxruntime on the CPU); see the module docstring."""
    from ..backends.ort import OrtBackend

    backend = backend or OrtBackend.cpu()
    path = Path(path)
    data = path.read_bytes()
    model = onnx.load_from_string(data)
    stamp = attached_stamp(model)
    if stamp is None:
        raise ModelFileError(f"{path}: no exportloss.attached metadata (not written by `exportloss attach`)")
    exposed = _exposing_detector_outputs(model, stamp)
    entry = _entry(path, model, stamp)
    row = VerifyRow(path.name, backend.name, backend.precision)
    reason = backend.unavailable_reason()
    if reason is not None:
        row.unavailable = reason
        return [row]
    row.tolerance = TOLERANCE
    cases = _cases(model, seed, images)
    options = stamp.nms_options()
    rotated = stamp.nms == "rotated"
    references: dict[bytes, tuple] = {}
    with tempfile.TemporaryDirectory(prefix="exportloss-attached-") as tmp:
        joined_path, exposed_path = Path(tmp) / path.name, Path(tmp) / f"exposed-{path.name}"
        joined_path.write_bytes(data)
        exposed_path.write_bytes(exposed.SerializeToString())
        try:
            with backend.sessions(exposed_path, exposed, entry) as exposed_sessions, \
                    backend.sessions(joined_path, model, entry) as joined_sessions:
                for exposed_session, joined_session in zip(exposed_sessions, joined_sessions):
                    row.provider = exposed_session.provider
                    row.notes.extend(n for n in exposed_session.notes if n not in row.notes)
                    summary = AttachedSummary()
                    for case in cases:
                        outputs = exposed_session.run(case.inputs)
                        got = [outputs[name] for name in stamp.outputs]
                        raw = [outputs[name] for name in stamp.detector_outputs]
                        key = b"".join(array.tobytes() for array in raw)
                        if key not in references:  # sessions that give the same detector outputs share the reference
                            boxes, scores = decode(stamp.layout, raw, stamp.box_format, stamp.num_classes)
                            references[key] = (nms_detections(boxes, scores, options, rotated),
                                               greedy_detections(boxes, scores, options, rotated),
                                               greedy_detections(boxes, scores, options, rotated, all_candidates=True),
                                               suppression_stats(boxes, scores, options, rotated))
                        want, want_top_k, want_all, stats = references[key]
                        compare(entry, TOLERANCE, row, case, exposed_session.label, got, want)
                        deployed = joined_session.run(case.inputs)
                        _compare_deployed(entry, row, case, joined_session.label, [deployed[n] for n in stamp.outputs], got)
                        _summarise(summary, case, got, want_top_k, want_all, stats)
                    row.notes.append(_describe(summary, options, exposed_session.label))
                    if summary.unflagged:
                        row.failures.append(f"{exposed_session.label}: detections differ from greedy NMS over all pairs "
                                            f"with converged true and nothing capped on {', '.join(summary.unflagged[:8])}")
        except BackendUnavailable as err:
            row.unavailable, row.provider, row.tolerance = str(err), "", None
        except SessionError as err:
            row.failures.append(str(err))
    return [row]


def _compare_deployed(entry: GraphEntry, row: VerifyRow, case: Case, label: str, deployed: list[np.ndarray],
                      exposed: list[np.ndarray]) -> None:
    """The joined model as written against the same model with the detector outputs exposed (one case)."""
    shadow = VerifyRow(row.graph, row.backend, against="exposed")
    compare(entry, TOLERANCE, shadow, case, f"{label}/as-written", deployed, exposed)
    row.failures.extend(shadow.failures)


def _summarise(summary: AttachedSummary, case: Case, got, want_top_k, want_all, stats) -> None:
    for b, image_stats in enumerate(stats):
        summary.images += 1
        summary.equal_top_k += _same_detections(got, want_top_k, b)
        summary.equal_all_pairs += _same_detections(got, want_all, b)
        summary.above_cap += image_stats.above_cap
        summary.longest_chain = max(summary.longest_chain, image_stats.longest_chain)
        summary.most_above_score_thr = max(summary.most_above_score_thr, image_stats.above_score_thr)
        flags = image_flags(got, b)
        summary.not_converged += not flags.converged
        summary.capped += flags.num_capped > 0
        if not _same_detections(got, want_all, b):
            summary.differing.append(f"{case.name}[{b}]")
            if not flags.flagged:
                summary.unflagged.append(f"{case.name}[{b}]")


@dataclass(frozen=True)
class ImageFlags:
    """One image's exactness outputs (either output convention)."""

    num_dets: int
    max_det: int
    converged: bool
    num_capped: int

    @property
    def flagged(self) -> bool:
        """Whether the graph says its detections may differ from greedy NMS over all pairs (see
        :mod:`exportloss.detection.nms`: exact when converged and (nothing capped or ``max_det`` detections))."""
        return not self.converged or (self.num_capped > 0 and self.num_dets < self.max_det)


def image_flags(outputs, b: int) -> ImageFlags:
    """:class:`ImageFlags` of image ``b`` from the seven NMS outputs (``num_dets`` or ``num_detections [B, 1]``)."""
    num_dets, det_boxes, _, _, _, converged, num_capped = outputs
    return ImageFlags(int(np.asarray(num_dets[b]).reshape(())), int(np.asarray(det_boxes).shape[1]),
                      bool(converged[b]), int(num_capped[b]))


def _same_detections(got, want, b: int) -> bool:
    """Same number of detections, same classes and box indices in the same order, boxes and scores within :data:`TOLERANCE`."""
    num_dets, det_boxes, det_scores, det_classes, det_indices = (np.asarray(x[b]) for x in got[:5])
    w_num, w_boxes, w_scores, w_classes, w_indices = (np.asarray(x[b]) for x in want[:5])
    if (int(num_dets.reshape(())) != int(w_num.reshape(())) or not np.array_equal(det_classes, w_classes)
            or not np.array_equal(det_indices, w_indices)):
        return False
    return all(np.all(np.abs(a.astype(np.float64) - e) <= TOLERANCE.atol + TOLERANCE.rtol * np.abs(e))
               for a, e in ((det_boxes, w_boxes), (det_scores, w_scores)))


def _describe(summary: AttachedSummary, options, label: str) -> str:
    cap = options.candidate_count(1 << 30)
    text = (f"{label}: kept sets equal greedy NMS over the top {cap} candidates on {summary.equal_top_k}/{summary.images} "
            f"images and over all pairs on {summary.equal_all_pairs}/{summary.images}; {summary.above_cap} image(s) had more "
            f"than {cap} pairs above score_thr (most: {summary.most_above_score_thr}); flagged by the graph: "
            f"{summary.not_converged} not converged, {summary.capped} with pairs capped; longest suppression chain "
            f"{summary.longest_chain} (iterations {_iterations(options, cap)})")
    if summary.differing:
        text += f"; differing from greedy over all pairs: {', '.join(summary.differing[:8])}"
    return text


def _iterations(options, cap: int) -> str:
    return f"auto = {options.iteration_count(cap)}" if options.iterations == "auto" else str(options.iterations)


def _exposing_detector_outputs(model: onnx.ModelProto, stamp: AttachStamp) -> onnx.ModelProto:
    """``model`` with the detector outputs the NMS reads as extra graph outputs (types from shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    typed = {value.name: value for value in (*inferred.graph.value_info, *inferred.graph.output)}
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    for name in stamp.detector_outputs:
        if name not in typed:
            raise ModelFileError(f"detector output {name!r} named in the exportloss.attached stamp is not in the model")
        exposed.graph.output.append(typed[name])
    return exposed


def _entry(path: Path, model: onnx.ModelProto, stamp: AttachStamp) -> GraphEntry:
    """A graph entry describing the joined model for the backends (names, shapes, tolerance); nothing is rebuilt from it."""
    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        return TensorSpec(value.name, tuple(d or 0 for d in tensor_dims(value) or ()), dtype_name(value))

    def unused(*_args):
        raise NotImplementedError("an attached model is verified by exportloss.detector_nms.verify")

    return GraphEntry(name=path.stem, summary="detector with exportloss NMS attached", sizes={"batch": stamp.batch},
                      make=unused, inputs=tuple(spec(v) for v in graph_inputs(model)),
                      outputs=tuple(spec(v) for v in model.graph.output if v.name in stamp.outputs),
                      reference=unused, random_inputs=unused, edge_cases=unused, tolerance=TOLERANCE)


def _cases(model: onnx.ModelProto, seed: int, images: int) -> list[Case]:
    """Seeded inputs, ``images`` images in batches of the model's batch: floats uniform in [0, 1), integers in [0, 255]."""
    rng = np.random.default_rng(seed)
    inputs = graph_inputs(model)
    batch = max(1, tensor_dims(inputs[0])[0] or 1)
    cases = []
    for i in range(max(1, -(-images // batch))):
        arrays = {}
        for value in inputs:
            shape, dtype = tensor_dims(value), np.dtype(dtype_name(value))
            if None in shape:
                raise ValueError(f"input {value.name} has a dynamic dimension; attach fixes the batch, the rest must be static")
            arrays[value.name] = (rng.uniform(0.0, 1.0, shape).astype(dtype) if dtype.kind == "f"
                                  else rng.integers(0, 256, shape).astype(dtype))
        cases.append(Case(f"images-{i}", arrays))
    return cases
