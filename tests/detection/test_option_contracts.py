"""Issue 22, findings 5, 6 and 18: option objects refuse contradictions and wrong types, for every family at once.

The rules live in :class:`exportloss.ops.options.Options` (types from the field annotations, ``DEFAULT`` as the
keyword functions' "not given"), so each case here stands for every options class.
"""

from __future__ import annotations

import pytest
import torch

import exportloss
from exportloss.detection.options import AssignOptions, MatchOptions, NMSOptions, RotatedNMSOptions
from exportloss.ops.options import DEFAULT
from exportloss.segmentation.options import OverlapOptions

BOXES = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0]]])
SCORES = torch.tensor([[0.9, 0.8]])
ROTATED = torch.tensor([[[5.0, 5.0, 10.0, 10.0, 0.0], [6.0, 6.0, 10.0, 10.0, 0.0]]])


@pytest.mark.parametrize("call", [
    lambda: exportloss.cluster_nms(BOXES, SCORES, iou_thr=0.5, options=NMSOptions(iou_thr=0.3)),
    lambda: exportloss.cluster_nms(BOXES, SCORES, kind="iou", options=NMSOptions()),
    lambda: exportloss.cluster_nms(BOXES, SCORES, iterations=None, options=NMSOptions()),
    lambda: exportloss.rotated_cluster_nms(ROTATED, SCORES, eps=1e-7, options=RotatedNMSOptions()),
    lambda: exportloss.max_iou_assign(BOXES, BOXES, torch.ones(1, 2, dtype=torch.bool), pos_thr=0.5, options=AssignOptions()),
    lambda: exportloss.match_metrics(BOXES, torch.ones(1, 2, dtype=torch.bool), BOXES, torch.ones(1, 2, dtype=torch.bool),
                                     thresholds=(0.5, 0.75), options=MatchOptions()),
    lambda: exportloss.dice_score(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), smooth=1e-5,
                                  options=OverlapOptions()),
    lambda: exportloss.DiceLoss(smooth=1e-5, options=OverlapOptions()),
    lambda: exportloss.ClusterNMS(iou_thr=0.5, options=NMSOptions()),
])
def test_options_and_any_explicit_keyword_are_a_contradiction(call):
    """``cluster_nms(iou_thr=0.5, options=NMSOptions(iou_thr=0.3))`` ran with 0.3: 0.5 equals the default, so the
    "not both" check could not see it. Now any keyword written by the caller counts, even at its default."""
    with pytest.raises(ValueError, match="not both"):
        call()


def test_the_keyword_functions_still_take_options_alone_and_keywords_alone():
    alone = exportloss.cluster_nms(BOXES, SCORES, options=NMSOptions(iou_thr=0.3))
    keywords = exportloss.cluster_nms(BOXES, SCORES, iou_thr=0.3)
    assert all(torch.equal(a, b) for a, b in zip(alone, keywords))
    assert NMSOptions.resolve(None, iou_thr=DEFAULT, kind="diou") == NMSOptions(kind="diou")
    assert repr(DEFAULT) == "DEFAULT"


@pytest.mark.parametrize("make, field", [
    (lambda: OverlapOptions(from_logits="false"), "from_logits"),
    (lambda: OverlapOptions(include_background=0), "include_background"),
    (lambda: AssignOptions(allow_low_quality="no"), "allow_low_quality"),
    (lambda: NMSOptions(max_det=True), "max_det"),
    (lambda: NMSOptions(candidates=False), "candidates"),
    (lambda: NMSOptions(iterations=2.0), "iterations"),
    (lambda: NMSOptions(score_thr=True), "score_thr"),
    (lambda: NMSOptions(iou_thr="0.5"), "iou_thr"),
    (lambda: NMSOptions(kind=1), "kind"),
    (lambda: OverlapOptions(ignore_index=True), "ignore_index"),
    (lambda: MatchOptions(thresholds=0.5), "thresholds"),
    (lambda: exportloss.DiceLoss(squared="yes"), "squared"),
    (lambda: exportloss.dice_score(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), jaccard=1), "jaccard"),
])
def test_booleans_are_booleans_and_ints_are_not_bools(make, field):
    """``OverlapOptions(from_logits="false")`` was True, ``AssignOptions(allow_low_quality="no")`` True,
    ``NMSOptions(max_det=True)`` 1; ``MatchOptions(thresholds=0.5)`` raised a TypeError without the field name."""
    with pytest.raises(TypeError, match=rf"^{field} must be"):
        make()


def test_assign_thresholds_must_not_cross():
    """``AssignOptions(pos_thr=0.3, neg_thr=0.7)`` was accepted: anchors in between would be both and neither."""
    with pytest.raises(ValueError, match="neg_thr must be <= pos_thr; got neg_thr=0.7 and pos_thr=0.3"):
        AssignOptions(pos_thr=0.3, neg_thr=0.7)
    assert AssignOptions(pos_thr=0.5, neg_thr=0.5).neg_thr == 0.5
    # Only an explicit crossing contradicts: an unset neg_thr is mmdet's 0.4, capped at a lower pos_thr.
    assert AssignOptions().neg_thr == 0.4 and AssignOptions(pos_thr=0.3).neg_thr == 0.3


def test_dice_score_takes_options():
    """Finding 18: dice_score had no ``options=`` although every other functional entry point has one."""
    logits, labels = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    assert torch.equal(exportloss.dice_score(logits, labels, options=OverlapOptions(score="jaccard")),
                       exportloss.dice_score(logits, labels, jaccard=True))
    with pytest.raises(ValueError, match="scores Dice or Jaccard"):
        exportloss.dice_score(logits, labels, options=OverlapOptions(score="tversky"))


VALID = torch.ones(1, 2, dtype=torch.bool)
EPS_FUNCTIONS = {
    "aligned_iou": lambda eps: exportloss.aligned_iou(BOXES, BOXES, eps=eps),
    "pairwise_iou": lambda eps: exportloss.pairwise_iou(BOXES, BOXES, eps=eps),
    "pairwise_iou_and_distance": lambda eps: exportloss.pairwise_iou_and_distance(BOXES, BOXES, eps=eps),
    "rotated_aligned_iou": lambda eps: exportloss.rotated_aligned_iou(ROTATED, ROTATED, eps=eps),
    "rotated_pairwise_iou": lambda eps: exportloss.rotated_pairwise_iou(ROTATED, ROTATED, eps=eps),
    "probiou": lambda eps: exportloss.probiou(ROTATED, ROTATED, eps=eps),
    "max_iou_assign": lambda eps: exportloss.max_iou_assign(BOXES, BOXES, VALID, eps=eps),
    "match_metrics": lambda eps: exportloss.match_metrics(BOXES, VALID, BOXES, VALID, eps=eps),
    "cluster_nms": lambda eps: exportloss.cluster_nms(BOXES, SCORES, eps=eps),
    "rotated_cluster_nms": lambda eps: exportloss.rotated_cluster_nms(ROTATED, SCORES, eps=eps),
}


def test_every_public_function_with_an_eps_is_covered():
    import inspect

    with_eps = {name for name in dir(exportloss) if inspect.isfunction(getattr(exportloss, name))
                and "eps" in inspect.signature(getattr(exportloss, name)).parameters}
    assert with_eps == set(EPS_FUNCTIONS)


@pytest.mark.parametrize("eps", [-1.0, 0.0, float("nan"), float("inf")])
@pytest.mark.parametrize("name", sorted(EPS_FUNCTIONS))
def test_every_functional_entry_point_checks_eps_as_its_module(name, eps):
    """Issue 22, findings 2 and 3: the functions took any eps (rotated IoU of 1.14 at eps = -1) where the modules refused."""
    with pytest.raises(ValueError, match="eps must be finite and > 0"):
        EPS_FUNCTIONS[name](eps)
