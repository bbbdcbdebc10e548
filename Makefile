# The README's commands. Each creates .venv on first use and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# pytest workers: the CI machine has 2 cores.
WORKERS ?= 2
ARGS   ?=

.PHONY: demo test bench bench-quick bench-install gpu-check clean venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[dev]"
	@touch $@

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/.dev-installed
	$(PIP) install --quiet -e ".[dev,bench]"
	@touch $@

venv: $(VENV)/.dev-installed

demo: $(VENV)/.dev-installed
	$(PY) -m experiments.demo --workdir demo_out

test: $(VENV)/.dev-installed
	$(PY) -m pytest -n $(WORKERS) --dist loadscope --durations=15 $(ARGS)

# The benchmark suite uses whatever comparators are installed in .venv; `make bench-install`
# adds them (torch, torchvision, tensorflow-cpu: the `bench` extra). Options go in ARGS:
# `make bench ARGS="--only nms,iou"`.
bench: $(VENV)/.dev-installed
	$(PY) -m benchmarks.run $(ARGS)

bench-quick: $(VENV)/.dev-installed
	$(PY) -m benchmarks.run --quick $(ARGS)

bench-install: $(VENV)/.bench-installed

# On a machine with an NVIDIA GPU: the compiled-kernel tests and the GPU benchmark rows in
# under 8 minutes, one JSON in $OUT or benchmarks/results (see the script's header; it picks
# its own Python). `make gpu-check ARGS=--quick` for the quick sizes.
gpu-check:
	bash benchmarks/gpu_check.sh $(ARGS)

clean:
	rm -rf $(VENV) demo_out .pytest_cache .hypothesis
