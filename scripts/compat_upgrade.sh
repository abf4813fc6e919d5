#!/usr/bin/env bash
# An order in flight survives the deployment's upgrade of Airflow (make compat-upgrade).
#
#   bash scripts/compat_upgrade.sh [FROM [TO]]     default: 3.2.2 3.3.2
#
# Builds the wheels and installs them beside apache-airflow[postgres]==FROM in .compat/venv-upgrade
# (git-ignored; created afresh), as make compat does (scripts/compat_lib.sh), then runs
# tests/integration/upgrade.py: a real Airflow FROM on a PostgreSQL database of its own
# (127.0.0.1:5432, user postgres, as the end-to-end tests), `airflow orders setup`, one order parked
# in approval, Airflow stopped, the same venv upgraded to TO with the provider wheel unchanged,
# `airflow db migrate`, Airflow started again, the approval answered through its REST API, the
# order completed with its ledger exact. Exit status non-zero on failure; the last line says what
# passed and how long each phase took.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
# shellcheck source=scripts/compat_lib.sh
# Wheels of its own (make compat may run beside it); the upgrade installs the same files again.
export COMPAT_DIST="$ROOT/.compat/dist-upgrade"
source "$ROOT/scripts/compat_lib.sh"
FROM="${1:-3.2.2}"
TO="${2:-3.3.2}"
VENV="$ROOT/.compat/venv-upgrade"

started=$SECONDS
compat_build_wheels
compat_log "== Airflow $FROM in $VENV"
compat_new_venv "$VENV"
compat_install "$VENV" "$FROM" postgres || { compat_log "Airflow $FROM: $COMPAT_ERROR"; exit 1; }
compat_log "installed in $((SECONDS - started))s"
status=0
"$ROOT/.venv/bin/python" -m tests.integration.upgrade --venv "$VENV" --from "$FROM" --to "$TO" || status=$?
compat_log "make compat-upgrade $FROM -> $TO: $([[ $status == 0 ]] && echo ok || echo FAILED) in $((SECONDS - started))s"
exit $status
