# Two commands are all a fresh clone needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODELS := models

.PHONY: demo test export verify examples bench lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
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

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
