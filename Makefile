# Two entry points: `make demo` runs the main job on the bundled data, `make test` runs
# ruff and the test suite. Both create .venv on first use and install the project into it.
# `make test-oldest` runs the suite in .venv-oldest, on the lowest versions pyproject.toml
# allows for every direct dependency (runtime and dev).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OLDEST := .venv-oldest

.PHONY: demo test test-oldest lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(VENV)/.installed $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $(VENV)/.installed $(VENV)/.installed-dev $@

demo: $(VENV)/.installed
	$(BIN)/clvmodels demo --output-dir clvmodels-demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks tools

# One worker per core (at most four: each holds its own PyMC, Spark and Numba state).
# A worker that runs out of tests takes some of another's (worksteal), so neither
# idles while the other finishes a long module; a module's fixtures may then be built
# twice. The slowest tests are listed at the end, to keep the suite's time in view.
PYTEST_ARGS := -q -n auto --maxprocesses=4 --dist worksteal --durations=10

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(OLDEST)/bin/python:
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip

$(OLDEST)/.installed: pyproject.toml tools/lowest_pins.py | $(OLDEST)/bin/python
	$(OLDEST)/bin/python tools/lowest_pins.py pyproject.toml dev > $(OLDEST)/constraints.txt
	$(OLDEST)/bin/python -m pip install --quiet -c $(OLDEST)/constraints.txt -e ".[dev]"
	touch $@

test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(OLDEST) clvmodels-demo .pytest_cache
