#!/usr/bin/env bash
# The README's install steps on a plain Airflow (make compat-install).
#
#   bash scripts/compat_install_walkthrough.sh [VERSION]      default: 3.3.2
#
# A plain apache-airflow[postgres]==VERSION (and pip) in .compat/venv-install (git-ignored; created
# afresh), then tests/integration/install_walkthrough.py: the README's commands of "Install into
# your Airflow", as written, on that Airflow (a PostgreSQL database of its own on 127.0.0.1:5432,
# user postgres), the setup command last: the first order waits, the order API says why, and it
# completes once `airflow orders setup` has run, with its ledger exact.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
# shellcheck source=scripts/compat_lib.sh
source "$ROOT/scripts/compat_lib.sh"
VERSION="${1:-3.3.2}"
VENV="$ROOT/.compat/venv-install"

started=$SECONDS
compat_log "== a plain Airflow $VERSION in $VENV"
compat_plain_airflow "$VENV" "$VERSION"
status=0
"$ROOT/.venv/bin/python" -m tests.integration.install_walkthrough --venv "$VENV" || status=$?
compat_log "make compat-install on Airflow $VERSION: $([[ $status == 0 ]] && echo ok || echo FAILED) in $((SECONDS - started))s"
exit $status
