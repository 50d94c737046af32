"""The detection options as validated values: checked once when made, the same object accepted by the
keyword function, the module and the float64 reference, and keyword signatures that mirror the fields."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch

import exportloss
from exportloss.catalog.detection import assign_inputs, detection_scene, match_inputs, rotated_scene
from exportloss.detection import AssignOptions, MatchOptions, NMSOptions, RotatedNMSOptions
from exportloss.ops.options import DEFAULT
from exportloss.reference.detection import (
    match_metrics_reference, max_iou_assign_reference, nms_reference, rotated_nms_reference,
)

# (options class, its keyword function, its module)
FAMILY = [
    (NMSOptions, exportloss.cluster_nms, exportloss.ClusterNMS),
    (RotatedNMSOptions, exportloss.rotated_cluster_nms, exportloss.RotatedClusterNMS),
    (AssignOptions, exportloss.max_iou_assign, exportloss.MaxIoUAssigner),
    (MatchOptions, exportloss.match_metrics, exportloss.MatchMetrics),
]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: NMSOptions(kind="giou"), r"^kind must be one of 'iou', 'diou'; got 'giou'$"),
        (lambda: NMSOptions(iou_thr=1.5), r"^iou_thr must be finite and lie in \[-1, 1\]; got 1.5$"),
        (lambda: NMSOptions(max_det=0), r"^max_det must be a positive int; got 0$"),
        (lambda: NMSOptions(classes="each"), r"^classes must be one of 'all', 'best', 'agnostic'; got 'each'$"),
        (lambda: NMSOptions(outputs="trt"), r"^outputs must be one of 'default', 'efficientnms'; got 'trt'$"),
        (lambda: NMSOptions(iterations="many"), r"^iterations must be a positive int or 'auto'; got 'many'$"),
        (lambda: NMSOptions(diou_beta=0), r"^diou_beta must be finite and > 0"),
        (lambda: RotatedNMSOptions(criterion="diou"), r"^criterion must be one of 'iou', 'probiou'; got 'diou'$"),
        (lambda: RotatedNMSOptions(candidates=0), r"^candidates must be a positive int or None; got 0$"),
        (lambda: AssignOptions(neg_thr=-1.5), r"^neg_thr must be finite and lie in \(-1, 1\]; got -1.5$"),
        (lambda: AssignOptions(eps=0.0), r"^eps must be finite and > 0"),
        (lambda: MatchOptions(thresholds=(0.5, 1.5)), r"^thresholds\[1\] must be finite and lie in \(0, 1\]"),
        (lambda: MatchOptions(loss_kind="l1"), r"^loss_kind must be one of"),
    ],
)
def test_a_bad_value_fails_when_the_options_are_made(make, message):
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


def test_options_are_frozen_normalised_and_hashable():
    options = NMSOptions(iou_thr=1, score_thr=0)
    assert options == NMSOptions(iou_thr=1.0, score_thr=0.0, iterations=None)  # None stores "auto"
    assert isinstance(options.iou_thr, float) and options.iterations == "auto" and options.candidates is None
    assert MatchOptions(thresholds=[0.5]).thresholds == (0.5,)
    assert len({NMSOptions(), NMSOptions(), NMSOptions(kind="diou")}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.iou_thr = 0.7
    with pytest.raises(TypeError):
        NMSOptions(0.5)  # keyword fields only: no parameter order to keep in step


def test_repr_names_every_field():
    assert repr(NMSOptions(kind="diou")) == (
        "NMSOptions(iou_thr=0.5, score_thr=0.05, max_det=100, iterations='auto', candidates=None, classes='all', "
        "outputs='default', eps=1e-07, "
        "kind='diou', diou_beta=1.0)"
    )
    assert repr(exportloss.ClusterNMS(kind="diou")) == (
        "ClusterNMS(iou_thr=0.5, score_thr=0.05, max_det=100, iterations='auto', candidates=None, classes='all', "
        "outputs='default', eps=1e-07, "
        "kind='diou', diou_beta=1.0)"
    )
    assert repr(exportloss.MaxIoUAssigner()) == (
        "MaxIoUAssigner(pos_thr=0.5, neg_thr=0.4, min_pos_thr=0.0, allow_low_quality=True, kind='iou', eps=1e-07)"
    )
    assert "criterion='probiou'" in repr(exportloss.RotatedClusterNMS(criterion="probiou"))
    assert "iterations=1," in repr(exportloss.FastNMS())


@pytest.mark.parametrize("options_type, function, module", FAMILY)
def test_keyword_signatures_mirror_the_fields(options_type, function, module):
    """The functions keep their keyword signatures: the dataclass's field names, each defaulting to ``DEFAULT``
    ("not given": the field's default applies, and an explicit keyword is seen even at that value)."""
    fields = {field.name: field.default for field in dataclasses.fields(options_type)}
    parameters = inspect.signature(function).parameters
    keywords = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    assert keywords.pop("options") is None
    assert keywords == dict.fromkeys(fields, DEFAULT)
    # A module built from keywords holds exactly what the options object holds.
    assert module(**{name: value for name, value in fields.items()}).options == options_type()


@pytest.mark.parametrize("options_type, function, module", FAMILY)
def test_options_are_checked_once_not_per_call(monkeypatch, options_type, function, module):
    built = module(options_type())
    calls = []
    original = options_type.__post_init__
    monkeypatch.setattr(options_type, "__post_init__", lambda self: (calls.append(1), original(self))[1])
    inputs = _inputs(options_type, np.random.default_rng(0))
    built(*inputs)
    function(*inputs, options=built.options)
    assert calls == []


def _inputs(options_type, rng):
    if options_type is NMSOptions:
        scene = detection_scene(rng, (2, 60, 4), (2, 60, 3))
    elif options_type is RotatedNMSOptions:
        scene = rotated_scene(rng, (2, 40, 5), (2, 40, 3))
    elif options_type is AssignOptions:
        scene = assign_inputs({"anchors": (2, 50, 4), "gt_boxes": (2, 6, 4), "gt_valid": (2, 6)}, rng)
    else:
        scene = match_inputs({"pred_boxes": (2, 30, 4), "pred_valid": (2, 30), "gt_boxes": (2, 6, 4), "gt_valid": (2, 6)}, rng)
    return [torch.from_numpy(value) for value in scene.values()]


CASES = [
    (NMSOptions(kind="diou", iou_thr=0.4, candidates=100, max_det=30), nms_reference),
    (NMSOptions(iterations=1, score_thr=0.1), nms_reference),  # iterations=1: Fast NMS, and so is the reference
    (RotatedNMSOptions(criterion="probiou", candidates=80, max_det=20), rotated_nms_reference),
    (AssignOptions(pos_thr=0.6, neg_thr=0.3, min_pos_thr=0.2, kind="diou"), max_iou_assign_reference),
    (MatchOptions(thresholds=(0.5, 0.9), match_thr=0.6, loss_kind="giou"), match_metrics_reference),
]


@pytest.mark.parametrize("options, reference", CASES, ids=lambda value: type(value).__name__)
def test_function_module_and_reference_take_the_same_object(options, reference):
    function, module = next((f, m) for t, f, m in FAMILY if t is type(options))
    inputs = _inputs(type(options), np.random.default_rng(1))
    by_module = module(options)(*inputs)
    by_object = function(*inputs, options=options)
    by_keywords = function(*inputs, **{field.name: getattr(options, field.name) for field in dataclasses.fields(options)})
    want = reference(*(t.double() if t.is_floating_point() else t for t in inputs), options)
    for got_module, got_object, got_keywords, w in zip(by_module, by_object, by_keywords, want):
        assert torch.equal(got_module, got_object) and torch.equal(got_module, got_keywords)
        torch.testing.assert_close(got_module.double(), w.double(), atol=1e-6, rtol=0)


def test_fast_nms_is_one_iteration_whatever_the_options_say():
    boxes, scores = _inputs(NMSOptions, np.random.default_rng(2))
    options = NMSOptions(kind="diou", iterations=8)
    want = exportloss.cluster_nms(boxes, scores, kind="diou", iterations=1)
    for got in (exportloss.fast_nms(boxes, scores, options), exportloss.FastNMS(options)(boxes, scores),
                exportloss.fast_nms(boxes, scores, kind="diou")):
        assert all(torch.equal(g, w) for g, w in zip(got, want))


def test_options_and_keywords_together_are_refused():
    boxes, scores = _inputs(NMSOptions, np.random.default_rng(3))
    with pytest.raises(ValueError, match=r"^give options or the keyword options \(kind\), not both$"):
        exportloss.cluster_nms(boxes, scores, kind="diou", options=NMSOptions())
    with pytest.raises(ValueError, match=r"not both"):
        exportloss.MaxIoUAssigner(AssignOptions(), pos_thr=0.7)
    with pytest.raises(TypeError, match=r"^options must be a NMSOptions or None; got RotatedNMSOptions$"):
        exportloss.ClusterNMS(RotatedNMSOptions())


def test_fast_nms_refuses_an_iterations_keyword():
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])
    scores = torch.tensor([[[0.9]]])
    with pytest.raises(TypeError, match="one iteration"):
        exportloss.fast_nms(boxes, scores, iterations=4)
