# Two commands for a new user: `make demo` and `make test`. Both create .venv when it is
# missing and install the pinned dependencies and the package (with its C++ extension).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.glamor-installed
NATIVE := $(wildcard csrc/*.cpp csrc/*.h csrc/cpu/*.cpp csrc/cpu/*.h csrc/cuda/*.cpp csrc/cuda/*.h csrc/cuda/*.cu csrc/cuda/*.cuh)
RUN_DIR ?= runs/demo

.PHONY: demo test test-slow build bench lint clean cuda-check

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(VENV)/bin/python requirements.txt pyproject.toml setup.py $(NATIVE)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-build-isolation -e .
	@touch $(STAMP)

build: $(STAMP)

demo: $(STAMP)
	$(PY) -m glamor train --preset gridworld --run-dir $(RUN_DIR) --overwrite
	@echo "Next: $(PY) examples/closed_loop.py $(RUN_DIR) --episodes 20   (the trained agent in a loop of your own)"

test: $(STAMP) cuda-check
	$(PY) -m ruff check glamor tests benchmarks examples
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/bench_planner.py

# nvcc compiles every csrc/cuda/*.cu for sm_90 without a GPU (skipped when nvcc is absent);
# re-run only when the CUDA sources change. Report: build/cuda-check/*.ptxas.txt.
CUDA_SRC := $(wildcard csrc/cuda/*.cu csrc/cuda/*.cuh csrc/cuda/*.h csrc/cuda/compile_check.sh) csrc/cpu/rng.h

cuda-check: build/cuda-check/.passed

build/cuda-check/.passed: $(CUDA_SRC)
	@csrc/cuda/compile_check.sh build/cuda-check
	@if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || [ -n "$$NVCC" ]; then touch $@; fi

lint: $(STAMP)
	$(PY) -m ruff check glamor tests benchmarks examples

clean:
	rm -rf build glamor/_C*.so glamor/_C.sources.json *.egg-info
