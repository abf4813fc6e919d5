#!/usr/bin/env bash
# The provider on each Airflow release it supports, installed as a user installs it.
#
#   bash scripts/compat.sh [VERSION...]      default: 3.1.8 3.2.2 3.3.2 (the latest patch of each minor)
#
# For each version, in .compat/venv-<minor> (git-ignored; created afresh each time):
#   1. the built wheels (provider, and the reference services beside it) and apache-airflow==VERSION,
#      installed together by uv as pip would (`pip install airflow_order_provider-*.whl
#      "apache-airflow==X.Y.Z"`); the step fails if Airflow would be moved off VERSION;
#   2. `airflow providers list` shows the provider;
#   3. the tests that apply, from a copy of tests/, harness/ and dags/ in .compat/run-<minor> (so that the
#      provider is imported from the installed wheel, never from this source tree): the unit tests,
#      the dag.test() orders (happy, refused card, compensated after a refusal...: every one checks
#      the services' audit ledger) and `airflow dags test` of a successful order (the deadline
#      workaround). What a release cannot do is skipped by marker, with its reason in the summary
#      (pytest -ra); nothing is skipped silently.
#
# COMPAT_PYTEST_ARGS: extra pytest arguments (e.g. "-k happy"); COMPAT_TESTS: the test paths
# (default below); COMPAT_CI=1: CI's reduced run (3.1.8, the tests below). Exit status: non-zero when any version fails; a summary line per version.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
# shellcheck source=scripts/compat_lib.sh
source "$ROOT/scripts/compat_lib.sh"
VERSIONS=("$@")
[[ ${#VERSIONS[@]} -gt 0 ]] || VERSIONS=(3.1.8 3.2.2 3.3.2)
# The unit tests that test the installed provider (not this repository's compose file or benchmark
# harness), the dag.test() orders, and `airflow dags test` (a test module of the integration suite
# that needs no running Airflow).
DEFAULT_TESTS="tests/unit tests/dags tests/integration/test_dags_test_cli.py --ignore=tests/unit/test_compose.py --ignore=tests/unit/test_benchmark_shape.py"
# CI's reduced run (COMPAT_CI=1, make compat-ci): what differs by release (the compat module's
# tests, the policy table, operators, sensors, priority, provider info and CLI, the setup command)
# and three dag.test() orders: happy, refused cards (never retried), compensated after an
# inventory refusal; on 3.1.8, the floor, where every fallback of the compat module runs (3.2 has
# a subset of them; 3.3.2 is what the rest of make test runs on). make compat runs all three.
CI_TESTS="tests/unit/test_version_compat.py tests/unit/test_policies.py tests/unit/operators tests/unit/sensors \
tests/unit/test_priority.py tests/unit/test_provider_info.py tests/unit/test_setup_command.py \
tests/unit/test_plugin_preload.py \
tests/dags/test_order_processing.py::test_happy_order \
tests/dags/test_order_processing.py::test_a_refused_card_is_tried_once_and_nothing_is_refunded \
tests/dags/test_order_processing.py::test_inventory_refusal_refunds_the_payment"
if [[ "${COMPAT_CI:-}" == 1 ]]; then
    [[ $# -gt 0 ]] || VERSIONS=(3.1.8)
    DEFAULT_TESTS="$CI_TESTS"
fi
TESTS="${COMPAT_TESTS:-$DEFAULT_TESTS}"

log() { compat_log "$@"; }

compat_build_wheels

declare -a SUMMARY=()
status=0
for version in "${VERSIONS[@]}"; do
    minor="${version%.*}"
    venv="$ROOT/.compat/venv-$minor"
    run="$ROOT/.compat/run-$minor"
    started=$SECONDS
    log "== Airflow $version in $venv"
    compat_new_venv "$venv"
    if ! compat_install "$venv" "$version" "" pytest jsonschema; then
        SUMMARY+=("Airflow $version: $COMPAT_ERROR"); status=1; continue
    fi
    home="$(mktemp -d -t compat-airflow-home.XXXXXX)"
    if ! AIRFLOW_HOME="$home" "$venv/bin/airflow" providers list 2>/dev/null | grep -q "airflow-order-provider"; then
        SUMMARY+=("Airflow $version: FAILED: not in airflow providers list"); status=1; rm -rf "$home"; continue
    fi
    rm -rf "$home"

    rm -rf "$run"
    mkdir -p "$run"
    cp -r "$ROOT/tests" "$ROOT/harness" "$ROOT/dags" "$ROOT/pyproject.toml" "$run/"
    find "$run" -name __pycache__ -prune -exec rm -rf {} +
    where="$(cd "$run" && "$venv/bin/python" -c 'import airflow_order_provider as p; print(p.__file__)' 2>/dev/null | tail -1)"
    if [[ "$where" != "$venv"/* ]]; then
        SUMMARY+=("Airflow $version: FAILED: the provider is imported from $where, not the wheel"); status=1; continue
    fi
    log "pytest $TESTS (provider from $where)"
    set +e
    # shellcheck disable=SC2086  # TESTS is a list of paths and options
    (cd "$run" && "$venv/bin/python" -m pytest -p no:cacheprovider -ra --durations=10 $TESTS ${COMPAT_PYTEST_ARGS:-}) \
        2>&1 | tee "$ROOT/.compat/pytest-$minor.log"
    code=${PIPESTATUS[0]}
    set -e
    line="$(grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$ROOT/.compat/pytest-$minor.log" | tail -1 | tr -d '=')"
    took=$((SECONDS - started))
    if [[ $code -ne 0 ]]; then
        SUMMARY+=("Airflow $version: FAILED:${line} (${took}s)"); status=1
    else
        SUMMARY+=("Airflow $version: ok:${line} (${took}s)")
    fi
done

echo
for line in "${SUMMARY[@]}"; do log "$line"; done
exit $status
