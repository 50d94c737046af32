"""Cluster-NMS and Fast NMS against hand-worked scenes and the plain-loop greedy / Fast NMS references."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import exportloss
from exportloss import catalog
from exportloss.catalog.detection import detection_scene
from exportloss.export import export_model
from exportloss.detection import NMSOptions
from exportloss.reference.detection import nms_reference

# One class, three boxes in a row: IoU(A, B) = IoU(B, C) = 70/130 > 0.5, IoU(A, C) = 40/160 = 0.25.
CHAIN = torch.tensor([[[0.0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]]])
CHAIN_SCORES = torch.tensor([[0.9, 0.8, 0.7]])


def kept_scores(dets: exportloss.Detections, b: int = 0) -> list[float]:
    return dets.det_scores[b, : int(dets.num_dets[b])].tolist()


def assert_same(got, want) -> None:
    assert len(got) == len(want)
    for name, g, w in zip(exportloss.Detections._fields, got, want):
        assert g.shape == w.shape, name
        torch.testing.assert_close(g.double(), w.double(), atol=0, rtol=0, msg=name)


def test_chain_greedy_fast_and_cluster_by_hand():
    # Greedy keeps A, which suppresses B; B is gone, so C survives. Fast NMS lets B suppress C.
    assert kept_scores(exportloss.cluster_nms(CHAIN, CHAIN_SCORES)) == pytest.approx([0.9, 0.7])
    assert kept_scores(exportloss.fast_nms(CHAIN, CHAIN_SCORES)) == pytest.approx([0.9])
    assert kept_scores(exportloss.cluster_nms(CHAIN, CHAIN_SCORES, iterations=2)) == pytest.approx([0.9, 0.7])
    # Below the chain's IoU nothing is suppressed.
    assert kept_scores(exportloss.cluster_nms(CHAIN, CHAIN_SCORES, iou_thr=0.6)) == pytest.approx([0.9, 0.8, 0.7])


def test_diou_nms_keeps_offset_boxes_iou_nms_drops():
    # B shifted 3.3 right of A: IoU = 67/133 = 0.504; rho^2 = 10.89, c^2 = 13.3^2 + 10^2: DIoU = 0.464.
    boxes = torch.tensor([[[0.0, 0, 10, 10], [3.3, 0, 13.3, 10]]])
    scores = torch.tensor([[0.9, 0.8]])
    assert int(exportloss.cluster_nms(boxes, scores, kind="iou").num_dets) == 1
    assert int(exportloss.cluster_nms(boxes, scores, kind="diou").num_dets) == 2
    # With beta = 0.5 the penalty grows to sqrt(0.0393) = 0.198: still kept; at 0.3 thr suppressed.
    assert int(exportloss.cluster_nms(boxes, scores, kind="diou", diou_beta=0.5).num_dets) == 2
    assert int(exportloss.cluster_nms(boxes, scores, kind="diou", diou_beta=0.5, iou_thr=0.3).num_dets) == 1


def test_fixed_shape_outputs_and_padding():
    dets = exportloss.cluster_nms(CHAIN, CHAIN_SCORES, max_det=5)
    assert dets.num_dets.tolist() == [2] and dets.num_dets.dtype == torch.int64
    assert dets.det_boxes.shape == (1, 5, 4) and dets.det_scores.shape == (1, 5)
    assert dets.det_classes.tolist() == [[0, 0, -1, -1, -1]] and dets.det_classes.dtype == torch.int64
    torch.testing.assert_close(dets.det_boxes[0, :2], CHAIN[0, [0, 2]])
    assert dets.det_boxes[0, 2:].abs().sum() == 0 and dets.det_scores[0, 2:].abs().sum() == 0


def test_score_thr_is_strict_and_nothing_above_gives_empty_rows():
    dets = exportloss.cluster_nms(CHAIN, torch.tensor([[0.05, 0.04, 0.7]]), score_thr=0.05)
    assert kept_scores(dets) == pytest.approx([0.7])
    empty = exportloss.cluster_nms(CHAIN, torch.full((1, 3), 0.01))
    assert empty.num_dets.tolist() == [0] and empty.det_classes.eq(-1).all() and empty.det_boxes.eq(0).all()


def test_classes_never_suppress_each_other():
    # The same box scores 0.9 as class 1 and 0.8 as class 2: both are kept, class 1 first.
    boxes = torch.tensor([[[0.0, 0, 10, 10]]])
    scores = torch.tensor([[[0.0, 0.9, 0.8]]])
    dets = exportloss.cluster_nms(boxes, scores)
    assert dets.num_dets.tolist() == [2]
    assert dets.det_classes[0, :2].tolist() == [1, 2]


def test_tie_rule_lower_flat_index_first():
    # Identical boxes with equal scores: the lower box index counts as higher-scored and survives.
    boxes = torch.tensor([[[5.0, 5, 20, 20], [0, 0, 10, 10], [0, 0, 10, 10]]])
    dets = exportloss.cluster_nms(boxes, torch.tensor([[0.5, 0.5, 0.5]]), max_det=3)
    torch.testing.assert_close(dets.det_boxes[0, :2], boxes[0, :2])
    # Across classes on one box: equal scores come out in class order (flat index n*C + c).
    dets = exportloss.cluster_nms(boxes[:, :1], torch.full((1, 1, 4), 0.5), max_det=4)
    assert dets.det_classes[0].tolist() == [0, 1, 2, 3]


def test_more_kept_than_max_det_keeps_the_best():
    boxes = torch.tensor([[[20.0 * i, 0, 20 * i + 10, 10] for i in range(8)]])  # disjoint
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.7, 0.5, 0.8, 0.2, 0.6]])
    dets = exportloss.cluster_nms(boxes, scores, max_det=3)
    assert dets.num_dets.tolist() == [3]
    assert kept_scores(dets) == pytest.approx([0.9, 0.8, 0.7])


def long_chain(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each box overlaps its neighbours by IoU 0.538 and the next-but-one by 0.25; scores fall along it."""
    boxes = torch.tensor([[[3.0 * i, 0, 3 * i + 10, 10] for i in range(length)]])
    return boxes, torch.linspace(0.9, 0.1, length).unsqueeze(0)


def greedy(boxes: torch.Tensor, scores: torch.Tensor, **options) -> tuple[torch.Tensor, ...]:
    """The float64 greedy NMS reference (iterations = the pair count skips the Cluster-NMS loops)."""
    return nms_reference(boxes.double(), scores.double(), NMSOptions(iterations=scores[0].numel(), **options))


def test_long_chain_is_flagged_at_the_default_and_exact_with_enough_iterations():
    """The 100-box chain: greedy NMS keeps every other box (50); 16 iterations keep 92 and say so."""
    boxes, scores = long_chain(100)
    want = greedy(boxes, scores, max_det=300)
    assert want[0].tolist() == [50] and want[4][0, :50].tolist() == list(range(0, 100, 2))
    default = exportloss.cluster_nms(boxes, scores, max_det=300)
    assert default.num_dets.tolist() == [92] and default.converged.tolist() == [False]
    assert_same(default, nms_reference(boxes.double(), scores.double(), NMSOptions(max_det=300)))  # the loops agree
    exact = exportloss.cluster_nms(boxes, scores, max_det=300, iterations=100)
    assert_same(exact, want)
    assert exact.converged.tolist() == [True] and exact.num_capped.tolist() == [0]
    # The first 9 detections precede the first box the 17th iteration would change: certified, and right.
    first = exportloss.cluster_nms(boxes, scores, max_det=9)
    assert first.converged.tolist() == [True]
    assert_same(first, greedy(boxes, scores, max_det=9))
    assert exportloss.cluster_nms(boxes, scores, max_det=10).converged.tolist() == [False]


def test_flag_is_false_exactly_where_the_result_differs_from_greedy():
    """Iterations from 1 to 100 on the 100-box chain, 1 to 8 on a 3-class tied scene: converged == (equal to greedy)."""
    rng = np.random.default_rng(65)
    scene = detection_scene(rng, (2, 200, 4), (2, 200, 3))
    tied = torch.from_numpy(scene["boxes"]), torch.round(torch.from_numpy(scene["scores"]) * 8) / 8
    for (boxes, scores), counts in ((long_chain(100), (1, 2, 40, 78, 79, 80, 100)), (tied, range(1, 9))):
        want = greedy(boxes, scores, max_det=40)
        flags = set()
        for iterations in counts:
            got = exportloss.cluster_nms(boxes, scores, max_det=40, iterations=iterations)
            for b in range(boxes.shape[0]):
                same = all(torch.equal(g[b].double(), w[b].double()) for g, w in zip(got[:5], want[:5]))
                assert bool(got.converged[b]) == same, (iterations, b)
                flags.add(same)
        assert flags == {True, False}


def test_more_candidates_than_the_cap_are_counted():
    """600 disjoint boxes above score_thr, 500 candidates: 100 pairs capped; greedy over all pairs keeps 600."""
    boxes = torch.tensor([[[20.0 * (i % 30), 20.0 * (i // 30), 20 * (i % 30) + 10, 20 * (i // 30) + 10] for i in range(600)]])
    scores = torch.linspace(0.9, 0.1, 600).unsqueeze(0)
    got = exportloss.cluster_nms(boxes, scores, candidates=500, max_det=600)
    assert got.num_dets.tolist() == [500] and got.num_capped.tolist() == [100] and got.converged.tolist() == [True]
    assert greedy(boxes, scores, candidates=600, max_det=600)[0].tolist() == [600]
    assert_same(got, nms_reference(boxes.double(), scores.double(), NMSOptions(candidates=500, max_det=600)))
    # With max_det kept among the candidates the cap cannot matter: the first 300 are greedy NMS's over all pairs.
    first = exportloss.cluster_nms(boxes, scores, candidates=500, max_det=300)
    assert first.num_capped.tolist() == [100]
    assert_same(first[:5], greedy(boxes, scores, candidates=600, max_det=300)[:5])


def exact_claim(dets: exportloss.Detections, max_det: int) -> torch.Tensor:
    """``[B]``: the outputs promise greedy NMS over all pairs (converged, and the cap left out nothing that counts)."""
    return dets.converged & ((dets.num_capped == 0) | (dets.num_dets == max_det))


@pytest.mark.parametrize("classes", ["all", "best", "agnostic"])
def test_dense_tied_images_equal_greedy_over_all_pairs_or_are_flagged(classes):
    """30 seeded dense images (600 boxes x 4 classes, scores in 1/16 steps: ties everywhere; 695 to 760 pairs above
    score_thr and 732 candidates, so about half the images are capped) per class mode: every image the flags call
    exact equals float64 greedy NMS over all pairs, and every other image differs or was flagged."""
    rng = np.random.default_rng(6200)
    claimed = equal = 0
    for _ in range(15):
        scene = detection_scene(rng, (2, 600, 4), (2, 600, 4))
        boxes, scores = torch.from_numpy(scene["boxes"]), torch.round(torch.from_numpy(scene["scores"]) * 16) / 16
        got = exportloss.cluster_nms(boxes, scores, candidates=732, max_det=100, classes=classes)
        want = greedy(boxes, scores, candidates=2400, max_det=100, classes=classes)
        for b in range(2):
            same = all(torch.equal(g[b].double(), w[b].double()) for g, w in zip(got[:5], want[:5]))
            claim = bool(exact_claim(got, 100)[b])
            assert same or not claim
            claimed += claim
            equal += same
    assert claimed >= 10 and equal >= claimed


@pytest.mark.parametrize("kind", ["iou", "diou"])
@pytest.mark.parametrize("num_classes", [1, 3])
def test_default_iterations_reach_greedy_on_detector_scenes(kind, num_classes):
    """100 seeded scenes of 2 images per kind and class count: 400 scenes, 800 images in all.

    All 400 reach greedy NMS at the default; about a third need more than 4 iterations, so the scenes
    do exercise the iteration count.
    """
    rng = np.random.default_rng(6000 + num_classes)
    scores_shape = (2, 200, num_classes) if num_classes > 1 else (2, 200)
    short_of_greedy_at_4 = 0
    for _ in range(100):
        scene = detection_scene(rng, (2, 200, 4), scores_shape)
        boxes, scores = torch.from_numpy(scene["boxes"]), torch.from_numpy(scene["scores"])
        want = greedy(boxes, scores, kind=kind)
        assert_same(exportloss.cluster_nms(boxes, scores, kind=kind), want)
        four = exportloss.cluster_nms(boxes, scores, kind=kind, iterations=4)
        short_of_greedy_at_4 += not all(torch.equal(g.double(), w.double()) for g, w in zip(four, want))
    assert short_of_greedy_at_4 >= 15


@pytest.mark.parametrize("kind", ["iou", "diou"])
def test_default_iterations_reach_greedy_on_dense_class_agnostic_scenes(kind):
    """The densest setting measured: 1000 boxes of one class on 3-12 objects (chains up to 10 long)."""
    rng = np.random.default_rng(6100)
    for _ in range(5):
        scene = detection_scene(rng, (2, 1000, 4), (2, 1000))
        boxes, scores = torch.from_numpy(scene["boxes"]), torch.from_numpy(scene["scores"])
        assert_same(exportloss.cluster_nms(boxes, scores, kind=kind), greedy(boxes, scores, kind=kind))


@pytest.mark.parametrize("kind", ["iou", "diou"])
def test_fast_nms_equals_its_loop_reference(kind):
    rng = np.random.default_rng(61)
    for _ in range(20):
        scene = detection_scene(rng, (2, 200, 4), (2, 200, 4))
        boxes, scores = torch.from_numpy(scene["boxes"]), torch.from_numpy(scene["scores"])
        want = nms_reference(boxes.double(), scores.double(), NMSOptions(kind=kind, iterations=1))
        assert_same(exportloss.fast_nms(boxes, scores, kind=kind), want)


@st.composite
def small_scenes(draw):
    n = draw(st.integers(1, 12))
    num_classes = draw(st.integers(1, 3))
    corners = draw(st.lists(st.tuples(*[st.integers(0, 12)] * 2, *[st.integers(1, 8)] * 2), min_size=n, max_size=n))
    boxes = torch.tensor([[[x, y, x + w, y + h] for x, y, w, h in corners]], dtype=torch.float32)
    # Scores on a coarse grid so that ties are common.
    scores = torch.tensor(draw(st.lists(st.integers(0, 10), min_size=n * num_classes, max_size=n * num_classes)),
                          dtype=torch.float32).reshape(1, n, num_classes) / 10
    return boxes, scores


@settings(max_examples=150, deadline=None)
@given(small_scenes(), st.sampled_from(["iou", "diou"]), st.sampled_from([0.3, 0.5]), st.sampled_from([1.0, 0.6]))
def test_enough_iterations_are_exactly_greedy(scene, kind, iou_thr, beta):
    boxes, scores = scene
    k = boxes.shape[1] * scores.shape[2]
    want = nms_reference(boxes.double(), scores.double(), NMSOptions(iou_thr=iou_thr, kind=kind, diou_beta=beta, max_det=5, iterations=k))
    assert_same(exportloss.cluster_nms(boxes, scores, iou_thr, kind, beta, max_det=5, iterations=k), want)
    fast = nms_reference(boxes.double(), scores.double(), NMSOptions(iou_thr=iou_thr, kind=kind, diou_beta=beta, max_det=5, iterations=1))
    assert_same(exportloss.fast_nms(boxes, scores, iou_thr=iou_thr, kind=kind, diou_beta=beta, max_det=5), fast)


def test_candidates_cut_keeps_the_top_pairs():
    rng = np.random.default_rng(62)
    scene = detection_scene(rng, (2, 200, 4), (2, 200, 5))
    boxes, scores = torch.from_numpy(scene["boxes"]), torch.from_numpy(scene["scores"])
    want = nms_reference(boxes.double(), scores.double(), NMSOptions(candidates=50, max_det=60))
    assert_same(exportloss.cluster_nms(boxes, scores, candidates=50, max_det=60), want)
    assert int(want[0].max()) <= 50


@pytest.mark.parametrize("name", ["cluster_nms", "cluster_diou_nms", "fast_nms"])
def test_onnxruntime_equals_reference_on_small_scenes(name):
    entry = catalog.get(name)
    shapes = {"boxes": (2, 150, 4), "scores": (2, 150, 3)}
    session = ort.InferenceSession(export_model(entry, shapes=shapes).SerializeToString(), providers=["CPUExecutionProvider"])
    module = entry.build()
    rng = np.random.default_rng(63)
    for _ in range(4):
        scene = detection_scene(rng, shapes["boxes"], shapes["scores"])
        got = session.run(entry.output_names, scene)
        want = entry.reference(module, *(torch.from_numpy(scene[k]).double() for k in ("boxes", "scores")))
        assert_same([torch.from_numpy(g) for g in got], want)


def test_matches_torchvision_batched_nms_when_installed():
    ops = pytest.importorskip("torchvision.ops")
    rng = np.random.default_rng(64)
    for _ in range(20):
        scene = detection_scene(rng, (1, 300, 4), (1, 300, 4))
        boxes, scores = torch.from_numpy(scene["boxes"])[0], torch.from_numpy(scene["scores"])[0]
        flat = scores.reshape(-1)
        pairs = torch.nonzero(flat > 0.05).squeeze(1)
        keep = ops.batched_nms(boxes[pairs // 4], flat[pairs], pairs % 4, 0.5)[:100]
        dets = exportloss.cluster_nms(boxes[None], scores[None])
        assert int(dets.num_dets) == len(keep)
        torch.testing.assert_close(dets.det_scores[0, : len(keep)], flat[pairs][keep])
        assert dets.det_classes[0, : len(keep)].tolist() == (pairs[keep] % 4).tolist()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: exportloss.cluster_nms(torch.rand(2, 5, 3), torch.rand(2, 5)), ValueError, r"boxes must have shape \[B, N, 4\]"),
        (lambda: exportloss.cluster_nms(torch.rand(2, 5, 4), torch.rand(2, 6)), ValueError, r"scores must have shape \[B, N\] or \[B, N, C\]"),
        (lambda: exportloss.cluster_nms(torch.rand(2, 5, 4), torch.ones(2, 5, dtype=torch.int64)), TypeError, r"scores must be a floating-point"),
        (lambda: exportloss.cluster_nms(torch.rand(2, 5, 4), torch.rand(2, 5), kind="giou"), ValueError, r"kind must be one of 'iou', 'diou'"),
        (lambda: exportloss.cluster_nms(torch.rand(2, 5, 4), torch.rand(2, 5), max_det=0), ValueError, r"max_det must be a positive int"),
        (lambda: exportloss.cluster_nms(torch.rand(2, 5, 4), torch.rand(2, 5), candidates=0), ValueError, r"candidates must be a positive int"),
        (lambda: exportloss.cluster_nms(torch.rand(2, 5, 4), torch.rand(2, 5), iterations=0), ValueError, r"iterations must be a positive int"),
        (lambda: exportloss.ClusterNMS(kind="diou", diou_beta=0), ValueError, r"diou_beta must be finite and > 0"),
    ],
)
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()

