# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit test-integration test-e2e check check-infra format bench-quality bench-serve bench-scale bench-faults clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/cashmatch demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test-e2e: setup
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

check: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared services cashmatch_cli

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Parses the Terraform and manifests and checks them against shared.bootstrap (no cloud needed).
check-infra: setup
	$(PY) infra/check_infra.py

bench-quality: setup
	$(PY) benchmarks/quality.py --profile default
	$(PY) benchmarks/quality.py --profile messy

bench-scale: setup
	$(PY) benchmarks/scale.py

bench-serve: setup
	$(PY) benchmarks/serve.py

# Replica killed, only replica killed, roll-out: failed requests and recovery under steady load.
bench-faults: setup
	$(PY) -m benchmarks.faults

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
