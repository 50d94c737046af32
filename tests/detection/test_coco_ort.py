"""``exportloss evaluate``'s onnxruntime CPU path equals pycocotools 2.0.11 on three seeded synthetic sets of 500
images: every ``evalImgs`` entry and the 12 summary numbers (to 1e-12; in fact bit for bit), and the exported
``coco_match`` catalog graph equals its float64 reference on its verification cases."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from coco_pycocotools import evalimgs_mismatches, run_pycocotools
from exportloss import catalog
from exportloss.detection.coco_data import coco_arrays, synthetic_coco
from exportloss.evaluation import evaluate_arrays, ort_runner
from exportloss.verify import reference_outputs

SEEDS = (0, 1, 2)
NUM_IMAGES = 500


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return ort_runner("ort-cpu", cache_dir=tmp_path_factory.mktemp("coco-cache"))


@pytest.mark.parametrize("seed", SEEDS)
def test_onnxruntime_matching_equals_pycocotools(runner, seed):
    gt, dets = synthetic_coco(seed, NUM_IMAGES)
    anchor = run_pycocotools(gt, dets)
    result = evaluate_arrays(coco_arrays(gt, dets), runner)
    compared, differing, _ = evalimgs_mismatches(anchor, result.matching)
    assert compared > 20000 and differing == 0
    np.testing.assert_allclose(result.stats, anchor.stats, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result.precision, anchor.eval["precision"])
    np.testing.assert_array_equal(result.recall, anchor.eval["recall"])


def test_the_catalog_graph_equals_its_reference_in_onnxruntime(exported):
    entry = catalog.get("coco_match")
    session = ort.InferenceSession(str(exported("coco_match")), providers=["CPUExecutionProvider"])
    module = entry.build()
    for case in entry.verification_cases(n_random=2):
        got = session.run(entry.output_names, case.inputs)
        want = reference_outputs(entry, module, case.inputs)
        for name, g, w in zip(entry.output_names, got, want):
            np.testing.assert_array_equal(g, w, err_msg=f"{case.name}/{name}")
