# meterline — `make help` lists the targets. Everything runs from the project virtualenv in .venv/.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
FUZZ_EXAMPLES ?= 500
FUZZ_SECONDS ?= 15
FUZZ_SEED ?= $(shell date +%s)
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.DEFAULT_GOAL := help

.PHONY: browser poppler
.PHONY: help venv up down status run test test-unit test-integration test-e2e test-cluster fuzz bench lint logs clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-17s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed ## create .venv/ and install meterline with its dev tools

up: venv ## start Kafka, Redis, PostgreSQL, the API, the ingest, the aggregator, the alerts worker and the biller (idempotent)
	$(BIN)/meterline up

down: ## stop everything `make up` started
	@test -x $(BIN)/meterline && $(BIN)/meterline down || true

status: venv ## show which processes of the local stack run
	$(BIN)/meterline status

run: up ## bring the stack up and run the Segment example end to end
	$(BIN)/meterline example

browser: ## Debian's Chromium, for the ops page's browser test
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

poppler: ## Debian's poppler-utils: the invoice document tests read PDFs back with pdftotext and pdftoppm
	@command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends poppler-utils; }

test: lint up browser poppler ## lint, then the whole suite: unit, integration (real Kafka/Redis/PostgreSQL) and end-to-end
	$(BIN)/pytest $(PYTEST_ARGS) tests

test-unit: venv poppler ## unit tests only (no services)
	$(BIN)/pytest $(PYTEST_ARGS) tests/unit

test-integration: up ## integration tests against the local services
	$(BIN)/pytest $(PYTEST_ARGS) tests/integration

test-e2e: up browser poppler ## end-to-end tests against the running processes
	$(BIN)/pytest $(PYTEST_ARGS) tests/e2e

# what `make test-cluster` runs against the local Redis Cluster with two aggregators: Redis's own tests, the
# exactly-once, usage, invoice and alert tests, and the failover of a master killed with -9
CLUSTER := METERLINE_LOCAL_REDIS=cluster METERLINE_AGGREGATORS=2
CLUSTER_TESTS ?= tests/integration/test_usage_state.py tests/integration/test_pipeline_stats.py \
  tests/integration/test_shared_rate_limit.py \
  tests/e2e/test_redis_cluster.py tests/e2e/test_segment_flow.py tests/e2e/test_aggregator_faults.py \
  tests/e2e/test_usage_current.py tests/e2e/test_invoices_segment_team.py tests/e2e/test_period_close_race.py \
  tests/e2e/test_alerts_stream.py tests/e2e/test_alert_evaluation_once.py tests/e2e/test_progressive_billing.py \
  tests/e2e/test_ops_metrics.py tests/e2e/test_stack.py

test-cluster: venv browser poppler ## the stack on a local Redis Cluster (3 masters, a replica each) with 2 aggregators: exactly-once, usage, invoice, alert and failover tests
	$(CLUSTER) $(BIN)/meterline up
	$(CLUSTER) $(BIN)/pytest $(PYTEST_ARGS) $(CLUSTER_TESTS)

fuzz: up ## fuzz every documented operation deeper than `make test` (a new seed, FUZZ_SECONDS per operation)
	METERLINE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) METERLINE_FUZZ_SECONDS=$(FUZZ_SECONDS) METERLINE_FUZZ_SEED=$(FUZZ_SEED) \
	  $(BIN)/pytest -s -p no:cacheprovider $(PYTEST_ARGS) tests/e2e/test_fuzz.py

bench: up ## run every benchmark against the local stack; writes .meterline/bench/latest.json
	$(BIN)/meterline bench $(BENCH_ARGS)

lint: venv ## ruff, mypy, and the import contracts of pyproject.toml (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

logs: ## follow the logs of the local stack
	tail -F .meterline/log/*.log

clean: down ## stop the stack and delete its data (.meterline/)
	rm -rf .meterline
