# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit test-integration test-e2e lint check check-infra audit format bench-quality bench-quality-scale bench-serve bench-scale bench-faults clean

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

# Lint, types and security lint (bandit, [tool.bandit] in pyproject.toml); CI runs this.
lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared services cashmatch_cli infra/check_infra.py infra/audit_deps.py
	$(VENV)/bin/bandit -c pyproject.toml -q -r shared services cashmatch_cli infra

# lint plus the dependency audit (not in CI: a new advisory upstream must not block a landing).
check: lint
	$(PY) infra/audit_deps.py

# Known vulnerabilities in the installed dependencies (pip-audit via OSV or PyPI). Without
# either service it prints "audit skipped: <why>" and passes; AUDIT_REQUIRED=1 makes that fail.
audit: setup
	CASHMATCH_AUDIT_REQUIRED=$(AUDIT_REQUIRED) $(PY) infra/audit_deps.py

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Terraform, k8s manifests and Dockerfiles against cashmatch.bootstrap and their schemas, hadolint,
# and checkov (pinned, in its own uv tool env; the first run installs it). No cloud needed.
check-infra: setup
	$(PY) infra/check_infra.py

bench-quality: setup
	$(PY) benchmarks/quality.py --profile default
	$(PY) benchmarks/quality.py --profile messy

# Speed at scale: train on 12 months and predict one, at 10k, 30k and 100k transfers a month
# (about 25 minutes on 2 cores; each step in a fresh process for its own peak memory).
bench-quality-scale: setup
	$(PY) benchmarks/quality.py --scale

bench-scale: setup
	$(PY) benchmarks/scale.py

bench-serve: setup
	$(PY) benchmarks/serve.py

# Replica killed, only replica killed, roll-out: failed requests and recovery under steady load.
bench-faults: setup
	$(PY) -m benchmarks.faults

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
