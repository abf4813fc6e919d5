# airflow-order-provider: development tasks.
#
#   make venv        create .venv (python3.11, else python3 >= 3.10) and install '.[dev]' with uv
#   make test        all tests: unit, services and the end-to-end Airflow tests (need PostgreSQL)
#   make test-unit   everything except the end-to-end tests (-m "not integration")
#   make test-e2e    only the end-to-end tests
#   make lint        ruff check
#   make demo        reference services + local Airflow (SQLite), DAG unpaused (scripts/demo.sh)
#   make clean       remove .demo/ and .e2e/ (not the venv)
#
# Extra pytest arguments: make test PYTEST_ARGS="-x -k happy"

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
VENV_PY     := $(VENV)/bin/python
UV          := $(VENV)/bin/uv
STAMP       := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

# python3.11 if present, else python3 when it is >= 3.10 (checked when the venv is created).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)

.PHONY: help venv install test test-unit test-e2e lint demo clean

help:
	@sed -n 's/^#   //p' Makefile

venv install: $(STAMP)

$(VENV_PY):
	@test -n "$(PYTHON)" || { echo "error: neither python3.11 nor python3 found" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || \
		{ echo "error: $(PYTHON) is older than 3.10; install python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(UV): | $(VENV_PY)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check uv

# Re-installs when pyproject.toml changes (or the stamp is missing); a no-op otherwise.
$(STAMP): pyproject.toml | $(UV)
	$(UV) pip install --python $(VENV_PY) -e '.[dev]'
	@sha256sum pyproject.toml > $(STAMP)

test: $(STAMP)
	$(VENV_PY) -m pytest tests $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(VENV_PY) -m pytest tests -m "not integration" $(PYTEST_ARGS)

test-e2e: $(STAMP)
	$(VENV_PY) -m pytest tests/integration -m integration $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	bash scripts/demo.sh

clean:
	rm -rf .demo .e2e
