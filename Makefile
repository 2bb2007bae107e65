# One entry point for people and CI. `make run` and `make test` do all set-up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install run test test-unit lint bench clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	bash infra/scripts/install-system-deps.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/bess kafka fetch
	touch $(STAMP)

install: $(STAMP) ## system packages, virtualenv, Python packages, Kafka jars

run: install ## start everything (Kafka, Postgres, Mosquitto, processors, API) and replay real prices
	$(BIN)/bess up

test: install ## all tests, against a real Kafka broker and Postgres started by the suite
	$(BIN)/python -m pytest

test-unit: install ## pure tests only (no services)
	$(BIN)/python -m pytest tests/unit

lint: install ## ruff, mypy (strict on domain/ and schemas/), import contracts
	$(BIN)/ruff check .
	$(BIN)/mypy domain schemas
	$(BIN)/lint-imports

bench: install ## benchmarks with same-run references (see bench/README.md)
	$(BIN)/python -m bench.market_pipeline
	$(BIN)/python -m bench.matching
	$(BIN)/python -m bench.trading_e2e
	$(BIN)/python -m bench.telemetry
	$(BIN)/python -m bench.forecasting
	$(BIN)/python -m bench.dispatch

clean: ## remove the virtualenv and the state of `bess up`
	rm -rf $(VENV) .run
