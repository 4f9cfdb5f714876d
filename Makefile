# maskrt: every target sets up .venv first (pinned, from requirements.lock).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Two cores: one intra-op thread pool sized to the machine, no nested pools.
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2

.PHONY: setup test bench demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	mkdir -p benchmarks/results
	$(PY) -m pytest benchmarks -q --benchmark-only --benchmark-json=benchmarks/results/latest.json

demo: $(STAMP)
	$(VENV)/bin/maskrt demo

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
