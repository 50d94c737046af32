"""The overlap family's options as one validated value: checked once when made, the public classes as
named scores over one OverlapLoss, and the same object accepted by function, module and reference."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import exportloss
from exportloss import OverlapLoss, OverlapOptions, OverlapScore
from exportloss.reference.segmentation import overlap_loss_reference, overlap_scores_reference


def inputs(mode="multiclass", seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(2, 4, 6, 5, generator=gen)
    target = torch.randint(0, 4, (2, 6, 5), generator=gen) if mode == "multiclass" else (torch.rand(2, 4, 6, 5, generator=gen) < 0.4).float()
    return logits, target


@pytest.mark.parametrize(
    "fields, error, message",
    [
        ({"mode": "semantic"}, ValueError, r"^mode must be one of 'binary', 'multiclass', 'multilabel'; got 'semantic'$"),
        ({"score": "f1"}, ValueError, r"^score must be one of 'dice', 'jaccard', 'tversky'; got 'f1'$"),
        ({"smooth": 0.0}, ValueError, r"^smooth must be finite and > 0; got 0.0$"),
        ({"alpha": -0.1}, ValueError, r"^alpha must be finite and >= 0"),
        ({"gamma": 0}, ValueError, r"^gamma must be finite and > 0"),
        ({"mode": "binary", "include_background": False}, ValueError, r"^include_background=False needs mode"),
        ({"ignore_index": 2.5}, TypeError, r"^ignore_index must be an int or None; got 2.5$"),
        ({"class_weights": [1.0, -1.0]}, ValueError, r"^class_weights must be finite and >= 0"),
        ({"reduction": "avg"}, ValueError, r"^reduction must be one of 'mean', 'sum', 'none'"),
    ],
)
def test_a_bad_value_fails_when_the_options_are_made(fields, error, message):
    with pytest.raises(error, match=message):
        OverlapOptions(**fields)


def test_options_are_frozen_normalised_and_repr_names_every_field():
    options = OverlapOptions(smooth=1, from_logits=False, class_weights=torch.tensor([0.1, 2.0]))
    assert options.smooth == 1.0 and options.from_logits is False
    assert options.class_weights == (torch.tensor(0.1).item(), 2.0)  # float32 values, as the loss applies them
    assert hash(options) == hash(dataclasses.replace(options))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.smooth = 2.0
    assert repr(OverlapOptions(score="tversky")) == (
        "OverlapOptions(mode='multiclass', score='tversky', alpha=0.5, beta=0.5, gamma=1.0, from_logits=True, "
        "squared=False, smooth=1e-05, reduce_batch=False, include_background=True, ignore_index=None, "
        "class_weights=None, reduction='mean')"
    )
    assert repr(exportloss.DiceLoss()) == f"DiceLoss({OverlapOptions().fields_repr()})"


def test_public_classes_are_named_scores_with_their_old_defaults():
    assert exportloss.DiceLoss().options == OverlapOptions()
    assert exportloss.DiceLoss("multilabel", jaccard=True, smooth=1.0).options == OverlapOptions(mode="multilabel", score="jaccard", smooth=1.0)
    assert exportloss.DiceScore().options == OverlapOptions()
    assert exportloss.TverskyLoss().options == OverlapOptions(score="tversky")
    assert exportloss.TverskyLoss(0.3, 0.7, 2.0, "multilabel").options == OverlapOptions(score="tversky", alpha=0.3, beta=0.7, gamma=2.0, mode="multilabel")
    assert exportloss.SoftDiceLoss(2.0, True).options == OverlapOptions(mode="binary", from_logits=True, squared=True, smooth=2.0, reduce_batch=True)
    assert isinstance(exportloss.SoftDiceLoss(), exportloss.DiceLoss)
    assert all(isinstance(m, OverlapLoss) for m in (exportloss.DiceLoss(), exportloss.TverskyLoss(), exportloss.SoftDiceLoss()))


@pytest.mark.parametrize("score", ["dice", "jaccard", "tversky"])
@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_function_module_and_reference_take_the_same_object(score, mode):
    options = OverlapOptions(mode=mode, score=score, alpha=0.3, beta=0.7, gamma=1.5, include_background=False,
                             class_weights=(0.0, 1.0, 2.0, 0.5), reduction="none")
    logits, target = inputs(mode)
    loss = OverlapLoss(options)(logits, target)
    torch.testing.assert_close(loss.double(), overlap_loss_reference(logits.double(), target, options), atol=1e-6, rtol=0)
    scores = OverlapScore(options)(logits, target)
    assert torch.equal(scores, exportloss.overlap_scores(logits, target, options))
    torch.testing.assert_close(scores.double(), overlap_scores_reference(logits.double(), target, options), atol=1e-6, rtol=0)
    if score != "tversky":
        keywords = dict(mode=mode, jaccard=score == "jaccard", include_background=False)
        assert torch.equal(scores, exportloss.dice_score(logits, target, **keywords))
        assert torch.equal(scores, exportloss.DiceScore(**keywords)(logits, target))


def test_named_classes_equal_the_one_overlap_loss_bit_for_bit():
    logits, target = inputs("multilabel", seed=3)
    pairs = [
        (exportloss.DiceLoss("multilabel", jaccard=True), OverlapOptions(mode="multilabel", score="jaccard")),
        (exportloss.TverskyLoss(0.3, 0.7, 4 / 3, mode="multilabel"), OverlapOptions(mode="multilabel", score="tversky", alpha=0.3, beta=0.7, gamma=4 / 3)),
    ]
    for named, options in pairs:
        assert torch.equal(named(logits, target), OverlapLoss(options)(logits, target))
        assert torch.equal(named(logits, target), OverlapLoss(**dataclasses.asdict(options))(logits, target))


def test_options_and_keywords_together_are_refused():
    with pytest.raises(ValueError, match=r"^give options or the keyword options \(smooth\), not both$"):
        OverlapLoss(OverlapOptions(), smooth=1.0)
