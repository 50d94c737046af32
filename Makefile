# Two commands are all a fresh clone needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODELS := models

.PHONY: demo test export verify readme-tables examples cpp-check bench bench-readme clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[export,test]'
	touch $(STAMP)

## demo: set up .venv, export the whole catalog to models/, verify it in onnxruntime, print the table
demo: $(STAMP)
	$(BIN)/exportloss export --all -o $(MODELS)
	$(BIN)/exportloss verify --all --models $(MODELS)

## test: set up .venv and run the test suite
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

export: $(STAMP)
	$(BIN)/exportloss export --all -o $(MODELS)

verify: $(STAMP)
	$(BIN)/exportloss verify --all --models $(MODELS)

## readme-tables: regenerate README.md's catalog tables from the catalog (a test fails when they differ)
readme-tables: $(STAMP)
	$(BIN)/exportloss list --readme README.md

## examples: (a) detector head + Cluster-DIoU-NMS as one verified graph, (b) a metric graph with sample
## .npz/.pb tensors (+ the C++ check when ONNXRUNTIME_ROOT is set), (c) the pytest harness example
examples: $(STAMP)
	$(BIN)/python export_scripts/detector_with_nms.py -o build/examples
	$(BIN)/python export_scripts/export_with_samples.py match_metrics -o build/examples
	$(BIN)/python -m pytest -q export_scripts/test_verify_my_module.py

## cpp-check: sample tensors for every graph of models/, export_scripts/cpp built once against
## ONNXRUNTIME_ROOT (README, "Run a graph from C++") and run on each; exits 1 when an output is out of tolerance
cpp-check: $(STAMP)
	$(BIN)/python export_scripts/export_with_samples.py --all --models $(MODELS) --cpp -o build/cpp-check

# The benchmark runs in its own environment: torchvision (the speed anchor) needs torch 2.14.1 beside it,
# which pip on this machine takes from local disk (a 5.5 GB CUDA build that runs on the CPU).
BENCH_VENV := .bench-venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml constraints-bench.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -c constraints-bench.txt -e '.[export]' torchvision pycocotools faster-coco-eval
	touch $(BENCH_STAMP)

## bench: ORT vs eager (default and warm allocator) vs reference vs torchvision, 2 threads, interleaved quiet rounds;
## every ratio with a 95% interval; exits 1 only when a target FAILs (its whole interval misses), never for
## `within noise` (about 15 minutes on a quiet 2-core machine). BENCH_ARGS adds arguments, e.g.
## make bench BENCH_ARGS="pairwise_ciou --sizes N=M=3000 --rounds 20"
bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/exportloss bench --threads 2 --json bench-results.json --markdown bench-results.md $(BENCH_ARGS)

## bench-readme: write the results of the last `make bench` (bench-results.json) into README.md's results block
bench-readme: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/exportloss bench --from-json bench-results.json --readme README.md --report-only

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .hypothesis build *.egg-info
