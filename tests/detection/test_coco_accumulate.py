"""The ``coco_accumulate`` graph (pycocotools' ``accumulate`` in onnxruntime) equals pycocotools 2.0.11 and the
numpy accumulation bit for bit: on a seeded synthetic set of 150 images (matched eagerly: the onnxruntime
matching is tested in test_coco_ort.py), on the catalog's verification cases
(ties across images, categories without ground truth, no detections), and with TopK's ties broken the other way."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from coco_pycocotools import run_pycocotools
from exportloss import catalog
from exportloss.cli import main
from exportloss.detection.coco_data import coco_arrays, synthetic_coco
from exportloss.evaluation import (ACCUMULATE_INPUT_NAMES, ACCUMULATE_OUTPUT_NAMES, accumulate_inputs, accumulate_matching,
                                   evaluate, evaluate_arrays, pad_accumulate_inputs, summary_lines, torch_runner)
from exportloss.testing import flip_ties
from exportloss.verify import reference_outputs

SEED, NUM_IMAGES = 0, 150


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("coco-accumulate-cache")


@pytest.fixture(scope="module")
def dataset(cache):
    """pycocotools' evaluation and exportloss's (eager matching, accumulation by the graph in onnxruntime) of one set."""
    gt, dets = synthetic_coco(SEED, NUM_IMAGES)
    result = evaluate_arrays(coco_arrays(gt, dets), torch_runner(), accumulate="graph", accumulate_backend="ort-cpu",
                             cache_dir=cache)
    return run_pycocotools(gt, dets), result


def test_the_graph_accumulation_equals_pycocotools(dataset):
    anchor, result = dataset
    np.testing.assert_array_equal(result.precision, anchor.eval["precision"])
    np.testing.assert_array_equal(result.recall, anchor.eval["recall"])
    np.testing.assert_allclose(result.stats, anchor.stats, rtol=0, atol=1e-12)
    assert (result.precision == -1).any() and (result.precision > 0).any()  # categories without ground truth: -1


def test_the_graph_and_numpy_accumulations_agree_eagerly(dataset):
    _, result = dataset
    numpy_result = accumulate_matching(result.matching, "numpy")
    eager = accumulate_matching(result.matching, "graph", backend="torch")
    for got in (eager.precision, numpy_result.precision):
        np.testing.assert_array_equal(got, result.precision)
    np.testing.assert_array_equal(eager.stats, numpy_result.stats)


def test_ties_broken_the_other_way_change_nothing(dataset, cache):
    """Scores come in 1/20 steps: thousands of ties across images. The graph's TopKs are rewritten to prefer the
    higher index among equal values; the outputs stay identical."""
    _, result = dataset
    inputs = accumulate_inputs(result.matching)
    assert len(np.unique(inputs["det_score"])) < len(inputs["det_score"]) / 50
    slots = 1 << int(len(inputs["det_category"]) - 1).bit_length()
    padded = pad_accumulate_inputs(inputs, slots)
    (path,) = cache.glob(f"*/coco_accumulate-{slots}x{len(inputs['num_positive'])}.onnx")  # exported by `dataset`
    model = onnx.load(str(path))
    outputs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(list(ACCUMULATE_OUTPUT_NAMES), padded)
               for m in (model, flip_ties(model))]
    for plain, flipped in zip(*outputs):
        np.testing.assert_array_equal(plain, flipped)
    np.testing.assert_array_equal(outputs[0][0], result.precision)


def test_the_catalog_graph_equals_its_reference_in_onnxruntime(exported):
    entry = catalog.get("coco_accumulate")
    assert [spec.name for spec in entry.inputs] == list(ACCUMULATE_INPUT_NAMES)
    session = ort.InferenceSession(str(exported("coco_accumulate")), providers=["CPUExecutionProvider"])
    module = entry.build()
    for case in entry.verification_cases(n_random=1):
        got = session.run(entry.output_names, case.inputs)
        want = reference_outputs(entry, module, case.inputs)
        for name, g, w in zip(entry.output_names, got, want):
            np.testing.assert_array_equal(g, w, err_msg=f"{case.name}/{name}")


def test_the_command_takes_accumulate_graph(tmp_path, capsys):
    gt, dets = synthetic_coco(11, 60)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    status = main(["evaluate", str(tmp_path / "gt.json"), str(tmp_path / "dets.json"), "--backend", "torch", "--accumulate", "graph"])
    assert status == 0
    assert capsys.readouterr().out.splitlines()[:12] == summary_lines(np.array(run_pycocotools(gt, dets).stats))


def test_an_unknown_accumulation_is_refused():
    gt, dets = synthetic_coco(1, 4)
    with pytest.raises(ValueError, match="accumulate must be one of numpy, graph"):
        evaluate(gt, dets, backend="torch", accumulate="gpu")
