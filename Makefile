# Two entry points for a fresh Debian machine with Python 3.11:
#   make quickstart   - venv + install + load examples/ CSVs into DuckDB (no server needed)
#   make test         - system packages + dev install + ruff + mypy + pytest
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: quickstart test lint typecheck unit system-deps venv dev tools clean

$(BIN)/python:
	PYTHON=$(PYTHON) scripts/make-venv.sh $(VENV)

$(VENV)/.installed-runtime: $(BIN)/python pyproject.toml setup.py $(wildcard targets/postgres/copyrows/*) $(wildcard taps/postgres/copyjson/*) $(wildcard dpone_drivers/kafkafast/*)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[duckdb]'
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml setup.py $(wildcard targets/postgres/copyrows/*) $(wildcard taps/postgres/copyjson/*) $(wildcard dpone_drivers/kafkafast/*)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@ $(VENV)/.installed-runtime

venv: $(VENV)/.installed-runtime
dev: $(VENV)/.installed-dev

quickstart: $(VENV)/.installed-runtime
	$(BIN)/python examples/quickstart.py

system-deps:
	scripts/install-system-deps.sh

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: dev
	$(BIN)/mypy

unit: dev
	DPONE_EVIDENCE_DIR=build/evidence $(BIN)/pytest

# Third-party tools (Meltano, Airbyte models, SDK plugins) in their own venvs under .venv-tools/.
tools: dev
	$(BIN)/python -m tests.tools

test: system-deps dev tools lint typecheck unit

clean:
	rm -rf $(VENV) .venv-tools .dpone .mypy_cache .ruff_cache .pytest_cache build/evidence
