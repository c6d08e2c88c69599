# `make demo` and `make test` work on a fresh machine: they install uv (pinned) into .tools,
# then `uv sync --locked` makes .venv from uv.lock exactly (it fails if the lock is stale).
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced-stamp
MEMBERS := $(wildcard services/*/pyproject.toml)
PYTEST_ARGS ?=

.PHONY: setup lock demo test test-unit test-integration test-e2e lint check check-infra audit format bench-quality bench-quality-scale bench-serve bench-versus-base bench-scale bench-match-scale bench-faults bench-chaos bench-images bench-console break-check browser clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) uv.lock pyproject.toml shared/pyproject.toml $(MEMBERS)
	$(UV) sync --locked --quiet --python $(PYTHON)
	touch $(STAMP)

# After changing a pyproject.toml: resolve again and write uv.lock (commit it).
lock: $(UV)
	$(UV) lock --python $(PYTHON)

setup: $(STAMP)

# The headless browser of tests/e2e/test_console_browser.py: Debian's chromium and its driver
# (.ci/run calls this as root on a fresh Debian machine). Does nothing when both are there.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "browser: $$(chromium --version 2>/dev/null), $$(chromedriver --version | cut -d' ' -f1-2)"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

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

# Lint, types, security lint (bandit, [tool.bandit] in pyproject.toml) and the library's
# import graph (no cycles, layers import inward: infra/import_graph.py); CI runs this.
lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared/src services infra/check_infra.py infra/audit_deps.py
	$(VENV)/bin/bandit -c pyproject.toml -q -r shared services infra
	$(PY) infra/import_graph.py

# lint plus the dependency audit (not in CI: a new advisory upstream must not block a landing).
check: lint
	$(PY) infra/audit_deps.py

# Known vulnerabilities in the installed dependencies (pip-audit via OSV or PyPI). Without
# either service it prints "audit skipped: <why>" and passes; AUDIT_REQUIRED=1 makes that fail.
audit: setup
	AUDIT_REQUIRED=$(AUDIT_REQUIRED) $(PY) infra/audit_deps.py

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Terraform, k8s manifests and Dockerfiles against the subscriptions and their schemas, each
# image's locked dependency set (no Ray outside the matcher), hadolint, and checkov (pinned, in its own uv tool env; the first run installs it). No cloud needed.
check-infra: setup
	$(PY) infra/check_infra.py

# Trains on the default world, scores it, the messy one and three randomized habit worlds.
bench-quality: setup
	$(PY) benchmarks/quality.py --worlds
	$(PY) benchmarks/quality.py --profile default
	$(PY) benchmarks/quality.py --profile messy

# Speed at scale: train on 12 months and predict one, at 10k, 30k and 100k transfers a month
# (about 25 minutes on 2 cores; each step in a fresh process for its own peak memory).
bench-quality-scale: setup
	$(PY) benchmarks/quality.py --scale

# The console's page latency (p50/p95) with 24 closed months and 100 model versions.
bench-console: setup
	$(PY) benchmarks/console.py

# Break each README promise once (tests/break_checks.toml) and check its test fails; the file is
# restored after each. ONLY="name ..." runs some. Slow (Ray Serve checks ~3 min each).
break-check: setup
	$(PY) infra/break_check.py $(if $(ONLY),--only $(ONLY))

bench-scale: setup
	$(PY) benchmarks/scale.py

bench-match-scale: setup
	$(PY) benchmarks/match_scale.py

bench-serve: setup
	$(PY) benchmarks/serve.py

# One in-process match and batch prediction of this checkout against its merge-base with main
# (a temporary git worktree), side by side with ratios; BASE=<commit> to pick another.
bench-versus-base: setup
	$(PY) benchmarks/versus_base.py $(if $(BASE),--base $(BASE))

# Replica killed, only replica killed, roll-out: failed requests and recovery under steady load.
bench-faults: setup
	$(PY) -m benchmarks.faults

# 12 months of the local stack with workers SIGKILLed mid-work and every event delivered 2-5
# times, against a calm run of the same world: the workspaces must be the same (~15 minutes).
bench-chaos: setup
	$(PY) benchmarks/chaos.py

# Each deployable's environment (its member alone, from uv.lock) against the whole workspace's:
# distributions, size on disk, cold import of its entry point and peak RSS, with ratios.
bench-images: setup
	$(PY) benchmarks/images.py

clean:
	rm -rf $(VENV) $(TOOLS) .demo .pytest_cache .mypy_cache .ruff_cache
