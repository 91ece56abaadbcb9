# The targets CI runs are exactly `make test` (see .ci/run). Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test faults lint typecheck unit docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	npm install --no-audit --no-fund --silent

## Run the whole pipeline locally on embedded defaults (Tansu broker, local lake), then print a summary.
run: setup
	$(BIN)/python -m devhost start --broker embedded --lake .lake --duration $${DURATION:-60}

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

docs: setup
	$(BIN)/python -m tools.docs schemas

## Set up and run every check: lint, types, unit, integration, fault and Terraform tests.
## Three workers on two cores: most of the suite's time is tests waiting on brokers, hosts and timeouts.
TEST_WORKERS ?= 3
test: setup lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

## Only the fault suite (also part of `make test`): kills, rewinds, outages, rebalances, offset restarts.
faults: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/faults

## The Quix Streams peer of bench/compare.py, in its own venv (it pins an older pydantic than the app).
.venv-quix/bin/python: bench/requirements-quix.txt
	$(PYTHON) -m venv .venv-quix
	.venv-quix/bin/pip install --quiet -r bench/requirements-quix.txt
	touch $@

bench: setup .venv-quix/bin/python
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/core.py
	$(BIN)/python bench/core_stages.py
	$(BIN)/python bench/telemetry_overhead.py
	$(BIN)/python bench/state.py
	$(BIN)/python bench/e2e.py
	$(BIN)/python bench/landing_guard.py
	$(BIN)/python bench/compact.py

clean:
	rm -rf $(VENV) .venv-quix node_modules .lake .lake.state .azurite
