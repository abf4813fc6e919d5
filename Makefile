# airflow-order-provider: development tasks.
#
#   make venv        create .venv (python3.11, else python3 >= 3.10) and install '.[dev]' with uv
#   make test        all tests: unit, services, the end-to-end Airflow tests (PostgreSQL), then in
#                    pytest runs of their own the chaos suite (30 orders, seed 538891 unless SEED=) and the distributed
#                    end-to-end test (CeleryExecutor on Redis, rushes of 20), then the benchmark harness's smoke run,
#                    then make compat-ci (the provider's wheel on Airflow 3.1.8)
#   make test-unit   everything except the end-to-end tests (-m "not integration")
#   make test-e2e    only the end-to-end tests on the LocalExecutor
#   make test-distributed N=100   only the distributed end-to-end test, with rushes of N orders
#   make lint        ruff check
#   make compat      the provider on Airflow 3.1.8, 3.2.2 and 3.3.2 (scripts/compat.sh): the built wheel
#                    installed beside each release in .compat/venv-<minor>, then the unit tests and
#                    dag.test() orders that apply (skips named by version); VERSIONS="3.2.2" for one
#   make compat-upgrade  an order parked in approval on Airflow 3.2.2 completes after the deployment's
#                    upgrade to 3.3.2 (scripts/compat_upgrade.sh: the same venv upgraded, provider wheel
#                    unchanged, airflow db migrate; PostgreSQL on 127.0.0.1:5432), ledger exact
#   make compat-install  the README's install steps on a plain Airflow 3.3.2 (scripts/compat_install_walkthrough.sh):
#                    the setup command last, so the first order first shows why it waits, then completes
#   make compat-ci   CI's reduced compat run (the last step of make test): Airflow 3.1.8 (the floor), the
#                    version-dependent unit tests and three dag.test() orders (happy, refused card, compensated)
#   make order-form  regenerate airflow_order_provider/order_form.json (the trigger form) after changing the order model
#   make demo        reference services + Airflow on PostgreSQL (LocalExecutor), DAG unpaused (scripts/demo.sh)
#   make rush N=100  send N orders at once to a running demo; check every order final and the ledger
#   make chaos N=30 SEED=7  the seeded chaos suite (tests/chaos) on an Airflow of its own, N orders (default 30)
#   make bench       benchmarks of issue 11 (P1-P5): the order DAG against a no-op DAG of its shape on one
#                    Airflow (PostgreSQL); writes docs/benchmarks.{md,json,png}. On 2 cores the whole run took
#                    49 min on 2026-11-26; P3 is shorter since the nudge and the batch of 2 (2026-12-05:
#                    parking 500 orders 5 min, then 3 pairs of about 5.5 s each with them open, and the
#                    batch-20 comparison 2 min; BENCH_ARGS="--parked 100 --parked-sequential 1" shortens it);
#                    PROFILE=deploy/low-latency.env adds a settings profile (docs/benchmarks-low-latency.*),
#                    BENCH_ARGS="--only P1,P4 --rounds 1" passes more options to python -m benchmarks.run
#   make bench-smoke the benchmark harness with tiny numbers, report in a temp dir: checks it works
#   make compose-up  docker-compose.yaml for real (scripts/compose.py): secrets generated on the first start,
#                    worker pools scaled to the machine (ORDER_WORKER_SCALE), official images or, where
#                    they cannot be pulled, stand-ins built from Debian packages; waits for every
#                    healthcheck, prints the UI address and admin password, writes .compose/credentials.json
#   make compose-down  remove the stack: containers, networks and volumes (checked: nothing left)
#   make test-compose  the compose end-to-end test (tests/compose): its own stack, 20 orders, kills, ledger,
#                    the payment worker's pool growing and shrinking; needs Docker (scripts/start-docker.sh)
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
# Orders per rush: the distributed test's (20 in `make test`, 100 in `make test-distributed`) and `make rush`'s.
N ?=

# python3.11 if present, else python3 when it is >= 3.10 (checked when the venv is created).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)

.PHONY: help venv install test test-unit test-e2e test-distributed lint demo rush clean compat compat-ci compat-upgrade compat-install

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

# The reference services are their own distribution once services/pyproject.toml exists.
SERVICES_PROJECT := $(wildcard services/pyproject.toml)
SERVICES_INSTALL := $(if $(SERVICES_PROJECT),-e ./services,)

# Re-installs when a pyproject.toml changes (or the stamp is missing); a no-op otherwise.
# Bytecode is compiled at install (uv does not by default; pip does): every Airflow task is a new
# process that imports Airflow, the provider and the DAG file, and without .pyc files (or with
# PYTHONDONTWRITEBYTECODE set, as on some CI machines) each one compiles them from source again:
# measured here, importing Airflow's core took 4.7 s instead of 2.0 s and parsing the order DAG
# file 0.28-0.36 s instead of 0.065 s. The editable sources (provider, services, DAGs) are compiled
# too; a file edited later is recompiled when imported.
BYTECODE_SOURCES := airflow_order_provider dags $(if $(SERVICES_PROJECT),services/order_services,)
$(STAMP): pyproject.toml $(SERVICES_PROJECT) | $(UV)
	$(UV) pip install --compile-bytecode --python $(VENV_PY) -e '.[dev]' $(SERVICES_INSTALL)
	$(VENV_PY) -m compileall -q $(BYTECODE_SOURCES) >/dev/null
	@sha256sum pyproject.toml $(SERVICES_PROJECT) > $(STAMP)

# Two pytest runs, so that only one Airflow stack runs at a time: the suite (its LocalExecutor
# deployment lives for the whole session), then the distributed one.
test: $(STAMP)
	$(VENV_PY) -m pytest tests -m "not distributed and not chaos" $(PYTEST_ARGS)
	CHAOS_ORDERS=$(or $(CHAOS_N),30) CHAOS_SEED=$(or $(SEED),538891) $(VENV_PY) -m pytest tests/chaos -m chaos $(PYTEST_ARGS)
	ORDER_E2E_RUSH_N=$(or $(N),20) $(VENV_PY) -m pytest tests/integration/test_distributed_e2e.py -m distributed $(PYTEST_ARGS)
	$(VENV_PY) -m pytest tests/benchmarks -m bench $(PYTEST_ARGS)
	COMPAT_CI=1 bash scripts/compat.sh

test-unit: $(STAMP)
	$(VENV_PY) -m pytest tests -m "not integration" $(PYTEST_ARGS)

test-e2e: $(STAMP)
	$(VENV_PY) -m pytest tests/integration -m "integration and not distributed" $(PYTEST_ARGS)

test-distributed: $(STAMP)
	ORDER_E2E_RUSH_N=$(or $(N),100) $(VENV_PY) -m pytest tests/integration/test_distributed_e2e.py -m distributed $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

VERSIONS ?=
compat: $(STAMP)
	bash scripts/compat.sh $(VERSIONS)

compat-ci: $(STAMP)
	COMPAT_CI=1 bash scripts/compat.sh $(VERSIONS)

compat-upgrade: $(STAMP)
	bash scripts/compat_upgrade.sh

compat-install: $(STAMP)
	bash scripts/compat_install_walkthrough.sh

# The trigger form's schemas, generated from the order model (tests/unit/test_order_form.py checks them).
.PHONY: order-form
order-form: $(STAMP)
	$(VENV_PY) -m airflow_order_provider.order_form --write

demo: $(STAMP)
	bash scripts/demo.sh

rush: $(STAMP)
	$(VENV_PY) scripts/rush.py --orders $(or $(N),100)

clean:
	rm -rf .demo .e2e

# The chaos suite in a pytest run of its own (its Airflow must be the only stack); SEED: its seed (default: drawn, reported).
.PHONY: chaos
chaos: $(STAMP)
	CHAOS_ORDERS=$(or $(N),30) CHAOS_SEED=$(SEED) $(VENV_PY) -m pytest tests/chaos $(PYTEST_ARGS)

# Benchmarks (benchmarks/run.py): not timed tests; each brings up its own services and Airflow.
PROFILE    ?=
BENCH_ARGS ?=
.PHONY: bench bench-smoke
bench: $(STAMP)
	$(VENV_PY) -m benchmarks.run $(if $(PROFILE),--profile $(PROFILE),) $(BENCH_ARGS)

bench-smoke: $(STAMP)
	$(VENV_PY) -m benchmarks.run --smoke $(if $(PROFILE),--profile $(PROFILE),) $(BENCH_ARGS)

# docker-compose.yaml run for real (scripts/compose.py; Docker: scripts/start-docker.sh as root).
.PHONY: compose-up compose-down test-compose
compose-up: $(STAMP)
	$(VENV_PY) scripts/compose.py up

compose-down: $(STAMP)
	$(VENV_PY) scripts/compose.py down

test-compose: $(STAMP)
	$(VENV_PY) -m pytest tests/compose -m compose $(PYTEST_ARGS)
