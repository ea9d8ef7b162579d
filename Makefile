# Two commands take a fresh clone to a passing test suite and a running demo:
#   make test     (runs `make setup` first when needed)
#   make demo
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
# Numba's on-disk cache only notices edits to a function's own file, not to the kernels it
# calls: key the cache folder on the sources so an edit anywhere recompiles everything.
SRC_HASH := $(shell find ipmix_ops fractal_store pipelines -name '*.py' -print0 2>/dev/null \
    | sort -z | xargs -0 cat | sha1sum | cut -c1-12)
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache/$(SRC_HASH)

.PHONY: setup test test-all lint format demo bench robustness gpu-proof clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml tools/setup_system.sh
	bash tools/setup_system.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	$(PY) tools/check_pins.py
	@touch $(STAMP)
	@echo "setup: .venv ready ($$(du -sh $(VENV) | cut -f1))"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: setup lint
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(PY) tools/demo.py $(DEMO_ARGS)

clean:
	rm -rf demo_out .pytest_cache .ruff_cache .numba_cache

# The benchmark suite: JSON per run in benchmarks/results/, README tables + plots regenerated.
#   make bench BENCH_ARGS=--quick        (a few minutes)   BENCH_ARGS=--report-only
bench: setup
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

# The robustness experiment (vanilla vs IPMix on the demo set), README table regenerated.
#   make robustness ROBUSTNESS_ARGS=--quick
robustness: setup
	$(PY) tools/robustness_experiment.py $(ROBUSTNESS_ARGS)

# On a CUDA machine (torch, Triton, Numba are enough): gpu tests, the GPU IPMix benchmark and
# ResNet-50 synthetic vs synthetic + GPU IPMix, in one JSON in benchmarks/results/ (<= ~6 min).
#   make gpu-proof GPU_PROOF_ARGS=--dry-run    (the same code on the CPU, under a minute)
# No `setup` prerequisite: a GPU machine may lack the venv, apt and the internet; its own
# python3 with torch, Triton and Numba runs the script from the repository root.
gpu-proof:
	$(if $(wildcard $(PY)),$(PY),python3) benchmarks/gpu_proof.py $(GPU_PROOF_ARGS)
