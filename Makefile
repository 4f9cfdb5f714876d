# maskrt: every target sets up .venv first (pinned, from requirements.lock).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Two cores: one intra-op thread pool sized to the machine, no nested pools.
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2

.PHONY: setup browser test test-slow test-signals test-all test-ptx \
	test-triton36 gpu-check bench bench-quick bench-compare bench-smoke demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# The page test of `maskrt serve` drives Debian's chromium headless; installed here when missing
# (CI runs as root with the Debian archive reachable; nothing is downloaded by the tests).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# CI runs `make test`; the tests marked slow (fault injection and at-scale checks, each with a faster
# sibling in make test) and signals run with make test-slow / test-signals, everything with make test-all.
# Two pytest-xdist workers: the suite alone keeps ~1.15 of the two cores busy (Ray, subprocesses and
# the Triton interpreter wait or run on one thread); tests/conftest.py says what must share a worker.
# make test-signals stays in one process: each case starts its own Ray and bounds the exit after a signal.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder
test: $(STAMP) browser
	$(PY) -m pytest -q tests -m "not signals and not slow" $(XDIST)
	$(MAKE) --no-print-directory test-triton36
	$(MAKE) --no-print-directory bench-smoke
# Killed replicas, workers, drivers and nodes, ResNet-50 engines, the Triton interpreter over whole
# models (~4.5 min on 2 cores, two xdist workers).
test-slow: $(STAMP) browser
	$(PY) -m pytest -q tests -m slow $(XDIST)
test-all: test test-slow test-signals

# Every signal at every phase of `maskrt serve` and `maskrt batch --ray` with their own Ray
# (tests/serve/test_signals.py, tests/distributed/test_signals.py; ~6 min on 2 cores).
test-signals: $(STAMP)
	$(PY) -m pytest -q tests -m signals

# The Triton kernels compiled for sm_90a and sm_80 on this CPU (also part of make test).
test-ptx: $(STAMP)
	$(PY) -m pytest -q tests -m ptx

# The same compile checks under the oldest triton maskrt supports (pyproject: maskrt[gpu]), which the
# lent GPU machines carry: a side environment (ignored folder) with triton 3.6's wheel only, whose
# torch, torchvision and pytest come from .venv through a .pth appended after its own site-packages.
# No GPU needed; its own triton cache. Part of make test.
TRITON_OLDEST ?= 3.6.0
TRITON36 := .venv-triton36
$(TRITON36)/.installed: $(STAMP)
	rm -rf $(TRITON36)
	$(PY) -m venv $(TRITON36)
	$(TRITON36)/bin/pip install --quiet --no-deps "triton==$(TRITON_OLDEST)"
	$(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > \
		"$$($(TRITON36)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_maskrt_venv.pth"
	$(TRITON36)/bin/python -c 'import torch, triton; assert triton.__version__ == "$(TRITON_OLDEST)", triton.__version__'
	touch $@

test-triton36: $(TRITON36)/.installed
	PYTHONPATH=$(CURDIR) TRITON_CACHE_DIR=$(CURDIR)/$(TRITON36)/cache $(TRITON36)/bin/python -m pytest -q \
		-p no:cacheprovider tests/gpu_verify/test_ptx.py -m ptx

# One-shot GPU check (benchmarks/gpu/check.py, maskrt/tensorrt/TENSORRT.md): on a CUDA machine, with
# that machine's own python3, torch, torchvision and triton (no .venv, nothing installed, no pytest),
# from the source tree: make gpu-check GPU_CHECK_OUT=$OUT. Writes $(GPU_CHECK_OUT)/gpu-check.jsonl,
# .json and .md as checks finish ($OUT when set, else ./gpu-check); without torch or a GPU it says
# so in one line and exits 2.
GPU_CHECK_OUT ?= $(if $(OUT),$(OUT),gpu-check)
gpu-check:
	PYTHONPATH=$(CURDIR) PYTHONUNBUFFERED=1 $(PYTHON) -m benchmarks.gpu.check --out $(GPU_CHECK_OUT)

# Benchmarks (benchmarks/README.md): raw JSON (every round's timing) + Markdown report + stage chart.
# Results are kept per kind of CPU (avx2, avx512, avx512-bf16: maskrt.machine), so figures from
# different machines are never mixed; each report names its machine precisely.
MACHINE_KIND = $(shell $(PY) -c "from maskrt.machine import describe; print(describe(False).kind)")
BENCH_OUT = benchmarks/results/$(MACHINE_KIND)
BASELINE ?= $(BENCH_OUT)/baseline.json
CURRENT ?= $(BENCH_OUT)/latest.json
# $(call bench_run,JSON,REPORT.md,CHART.png,PYTEST SELECTION): the JSON is written under a .partial
# name and renamed when pytest ends; the report is made even when a benchmark failed (exit status kept).
define bench_run
	mkdir -p $(BENCH_OUT)
	rm -f $(1).partial
	status=0; $(PY) -m pytest $(4) -q -p no:cacheprovider --benchmark-only --benchmark-json=$(1).partial \
		--benchmark-columns=median,min,rounds || status=$$?; \
	if [ -s $(1).partial ]; then mv -f $(1).partial $(1) && \
		$(PY) -m benchmarks.report $(1) -o $(2) --chart $(3) || status=$$((status ? status : 1)); fi; \
	exit $$status
endef

bench: $(STAMP)
	$(call bench_run,$(BENCH_OUT)/latest.json,$(BENCH_OUT)/REPORT.md,$(BENCH_OUT)/stages.png,benchmarks)

bench-quick: export MASKRT_BENCH_SECONDS ?= 1
bench-quick: $(STAMP)
	$(call bench_run,$(BENCH_OUT)/quick.json,$(BENCH_OUT)/QUICK.md,$(BENCH_OUT)/quick-stages.png,benchmarks -m quick)

bench-compare: $(STAMP)
	@test -f $(BASELINE) || { echo "no saved run at $(BASELINE): keep one with cp $(CURRENT) $(BASELINE)"; exit 2; }
	$(PY) -m benchmarks.report $(CURRENT) -o $(BENCH_OUT)/COMPARE.md --compare $(BASELINE) --fail-on-regression

# CI smoke check: every quick benchmark body runs once, untimed, so the suites cannot rot.
bench-smoke: $(STAMP)
	$(PY) -m pytest benchmarks -m quick -q -p no:cacheprovider --benchmark-disable

demo: $(STAMP)
	$(VENV)/bin/maskrt demo

clean:
	rm -rf $(VENV) $(TRITON36) .pytest_cache .benchmarks
