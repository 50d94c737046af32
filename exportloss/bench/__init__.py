"""Side-by-side speed of exported graphs, measured in one run, interleaved and on a quiet machine.

For each case (:mod:`.cases`) the benchmark exports the graph at the case's size and times, in
interleaved rounds behind a quiet-machine gate (:mod:`.timing`):

(a) ``ort``: onnxruntime on the exported graph (``ORT_ENABLE_ALL``, ``threads`` intra-op threads);
(b) ``eager``: the same trace-friendly module in eager PyTorch (``torch.set_num_threads(threads)``);
(c) ``reference``: the float64 eager reference, where one call takes under half a second;
(d) ``anchor``: the implementation the graph replaces (torchvision.ops), when importable;
(b') and (d') ``eager warm``, ``anchor warm``: (b) and (d) in a subprocess whose allocator keeps freed
    buffers mapped (:mod:`.warm`), the state of a long-running service;
(e) for memory-bound cases the output floor: ``fill`` (writing the outputs into preallocated buffers)
    and ``fresh`` (allocating and writing them), plus the inputs read at a bandwidth measured in the run.

A case may instead bring its own backends (:attr:`.cases.BenchCase.backends`): the ``evaluate`` row times
``exportloss evaluate`` against faster-coco-eval (``anchor``) and pycocotools (``reference``), :mod:`.coco`.

Rows (:mod:`.runner`) carry medians with interquartile ranges, ratios with intervals from the paired
rounds (:mod:`.intervals`), ns/pair for the pairwise graphs, the rounds kept by the gate, and a verdict
per target: ``PASS``, ``FAIL`` or ``within noise``; rows within noise get more rounds, up to the time
limit. :mod:`.report` writes tables, JSON and the README block, and :mod:`.cuda` is the GPU variant
(``exportloss bench --device cuda``).
"""

from .cases import BenchCase, Target, default_cases
from .intervals import FAIL, NOISE, PASS, Estimate, bootstrap, verdict
from .report import HEADERS, markdown, summary_rows, to_json, update_readme
from .runner import BenchRow, Judgement, run, run_case, select_cases
from .timing import measure_bandwidth

__all__ = ["FAIL", "HEADERS", "NOISE", "PASS", "BenchCase", "BenchRow", "Estimate", "Judgement", "Target", "bootstrap",
           "default_cases", "markdown", "measure_bandwidth", "run", "run_case", "select_cases", "summary_rows", "to_json",
           "update_readme", "verdict"]
