#!/usr/bin/env bash
# /entrypoint of the stand-in Airflow image (scripts/build-standin-images.sh): the part of the
# official image's entrypoint that docker-compose.yaml relies on.
#   /entrypoint bash ...      runs bash;  /entrypoint python ...  runs python
#   /entrypoint airflow X     runs airflow X;  /entrypoint X ...    runs airflow X ...
# (The official one also waits for the database and the broker, and can create a user; the compose
# file's depends_on and airflow-init do that here.)
set -euo pipefail
umask 0002
case "${1:-}" in
    bash) shift; exec /bin/bash "$@" ;;
    python) shift; exec python "$@" ;;
    airflow) shift ;;
esac
exec airflow "$@"
