#!/usr/bin/env bash
# Local demo: the reference order services plus `airflow standalone`, with the order_processing DAG
# unpaused and ready to trigger. Runs in the foreground; Ctrl-C (or TERM) stops everything.
#
#   make demo                                   # or: bash scripts/demo.sh
#   AIRFLOW_PORT=8081 ORDER_SERVICES_PORT=8701 make demo
#
# Airflow gets the settings this project ships for a deployment (timeouts, orders in flight) from
# deploy/airflow-order.env, in both modes; a variable already set in the environment wins.
#
# State lives in .demo/ (SQLite databases, API key, AIRFLOW_HOME=.demo/airflow, logs); delete the
# folder to start from scratch.
#
# DEMO_MODE=standalone (default) runs `airflow standalone` on its embedded SQLite. Its scheduler and
# triggerer log servers listen on all interfaces (ports 8793 and 8794), which Airflow offers no
# setting to change. DEMO_MODE=components runs the same pieces (db migrate, api-server, scheduler,
# dag-processor, triggerer; LocalExecutor, SimpleAuthManager, SQLite) with those log servers off,
# so that every port listens on 127.0.0.1 only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_BIN="$ROOT/.venv/bin"
DEMO_DIR="$ROOT/.demo"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
ORDER_SERVICES_PORT="${ORDER_SERVICES_PORT:-8700}"
DAG_ID="order_processing"
STARTUP_TIMEOUT="${DEMO_STARTUP_TIMEOUT:-240}"
DEMO_MODE="${DEMO_MODE:-standalone}"
case "$DEMO_MODE" in components | standalone) ;; *)
    echo "error: DEMO_MODE must be 'components' or 'standalone'" >&2
    exit 1
    ;;
esac

if [[ ! -x "$VENV_BIN/airflow" || ! -x "$VENV_BIN/order-services" ]]; then
    echo "error: $VENV_BIN has no airflow/order-services; run 'make venv' first" >&2
    exit 1
fi
command -v curl >/dev/null || { echo "error: curl is required (apt-get install curl)" >&2; exit 1; }
command -v setsid >/dev/null || { echo "error: setsid is required (apt-get install util-linux)" >&2; exit 1; }
# Airflow components (and `airflow standalone`) start each other as `airflow ...` from PATH.
export PATH="$VENV_BIN:$PATH"
PY="$VENV_BIN/python"

port_in_use() {
    "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like the servers: TIME_WAIT is no conflict
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
EOF
}
for port in "$AIRFLOW_PORT" "$ORDER_SERVICES_PORT"; do
    if port_in_use "$port"; then
        echo "error: port $port on 127.0.0.1 is already in use (set AIRFLOW_PORT / ORDER_SERVICES_PORT)" >&2
        exit 1
    fi
done

mkdir -p "$DEMO_DIR/airflow" "$DEMO_DIR/logs"
secret() {  # a random value generated once and kept in .demo/<name>
    local file="$DEMO_DIR/$1"
    [[ -s "$file" ]] || "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$file"
    cat "$file"
}
API_KEY="$(secret api_key)"
SERVICES_URL="http://127.0.0.1:$ORDER_SERVICES_PORT"
AIRFLOW_URL="http://127.0.0.1:$AIRFLOW_PORT"

SERVICES_PID=""
AIRFLOW_PID=""
stop_group() {  # stop_group NAME PGID: TERM the process group, KILL it after 20 s
    local name="$1" pgid="$2"
    [[ -n "$pgid" ]] || return 0
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 -- "-$pgid" 2>/dev/null || { echo "stopped $name"; return 0; }
        sleep 0.2
    done
    echo "$name did not stop in 20 s: killing its process group $pgid"
    kill -KILL -- "-$pgid" 2>/dev/null || true
}
cleanup() {
    trap - INT TERM EXIT
    echo
    echo "Stopping the demo..."
    stop_group "airflow" "$AIRFLOW_PID"
    stop_group "order services" "$SERVICES_PID"
}
trap cleanup EXIT
# Ctrl-C / TERM are the normal way to end the demo: stop everything and exit 0.
trap 'exit 0' INT TERM

# --- reference services ---------------------------------------------------------------------
echo "Starting the reference order services on $SERVICES_URL (log: .demo/logs/order-services.log)"
setsid "$VENV_BIN/order-services" serve --host 127.0.0.1 --port "$ORDER_SERVICES_PORT" \
    --db "$DEMO_DIR/order-services.db" --api-key "$API_KEY" \
    >>"$DEMO_DIR/logs/order-services.log" 2>&1 </dev/null &
SERVICES_PID=$!

wait_http() {  # wait_http URL SECONDS NAME PID
    local url="$1" deadline=$((SECONDS + $2)) name="$3" pid="$4"
    until curl -fsS -o /dev/null "$url" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: $name exited; see its log in .demo/logs/" >&2
            return 1
        fi
        if ((SECONDS > deadline)); then
            echo "error: $name did not answer $url within $2 s" >&2
            return 1
        fi
        sleep 1
    done
}
wait_http "$SERVICES_URL/health" 60 "order-services" "$SERVICES_PID"

# --- Airflow ----------------------------------------------------------------------------------
# The settings this project ships for a deployment (timeouts, orders in flight): deploy/airflow-order.env.
# A variable already set in the environment wins, e.g.
#   AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=60 make demo
DEPLOY_ENV_FILE="$ROOT/deploy/airflow-order.env"
load_env_file() {  # load_env_file FILE: export its KEY=value lines (no eval: values are taken verbatim)
    local file="$1" line key value n=0
    [[ -r "$file" ]] || { echo "error: $file is missing" >&2; return 1; }
    while IFS= read -r line || [[ -n "$line" ]]; do
        n=$((n + 1))
        line="${line%$'\r'}"
        [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
        if [[ ! "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
            echo "error: $file:$n is not KEY=value: $line" >&2
            return 1
        fi
        key="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]}"
        [[ -n "${!key+set}" ]] || export "$key=$value"
    done <"$file"
}
load_env_file "$DEPLOY_ENV_FILE"
echo "Loaded the deployment settings of deploy/airflow-order.env"

export AIRFLOW_HOME="$DEMO_DIR/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__API__BASE_URL="http://localhost:$AIRFLOW_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="$AIRFLOW_URL/execution/"
export AIRFLOW__API_AUTH__JWT_SECRET="$(secret jwt_secret)"
export AIRFLOW__API__SECRET_KEY="$(secret api_secret_key)"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-10}"
for service in PAYMENT INVENTORY SHIPPING NOTIFICATION; do
    export "AIRFLOW_CONN_ORDER_${service}_DEFAULT=http://:${API_KEY}@127.0.0.1:${ORDER_SERVICES_PORT}"
done

export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-8}"

if [[ "$DEMO_MODE" == standalone ]]; then
    echo "Starting airflow standalone on $AIRFLOW_URL (AIRFLOW_HOME=.demo/airflow, log: .demo/logs/airflow-standalone.log)"
    (cd "$DEMO_DIR" && exec setsid airflow standalone) >>"$DEMO_DIR/logs/airflow-standalone.log" 2>&1 </dev/null &
else
    echo "Starting Airflow on $AIRFLOW_URL (AIRFLOW_HOME=.demo/airflow, logs: .demo/logs/<component>.log)"
    # One process group: migrate, then the four components; it exits as soon as any of them does.
    (cd "$DEMO_DIR" && exec setsid bash -c '
        logs="$1"
        airflow db migrate >>"$logs/db-migrate.log" 2>&1 || { echo "airflow db migrate failed" >&2; exit 1; }
        airflow api-server >>"$logs/api-server.log" 2>&1 &
        airflow scheduler --skip-serve-logs >>"$logs/scheduler.log" 2>&1 &
        airflow dag-processor >>"$logs/dag-processor.log" 2>&1 &
        airflow triggerer --skip-serve-logs >>"$logs/triggerer.log" 2>&1 &
        wait -n
        echo "an Airflow component exited; see $logs" >&2
        exit 1' airflow-demo "$DEMO_DIR/logs") >>"$DEMO_DIR/logs/airflow.log" 2>&1 </dev/null &
fi
AIRFLOW_PID=$!

echo "Waiting for the Airflow API server (first start migrates the database: about a minute)..."
wait_http "$AIRFLOW_URL/api/v2/monitor/health" "$STARTUP_TIMEOUT" "airflow" "$AIRFLOW_PID"

PASSWORDS_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
for _ in $(seq 1 60); do [[ -s "$PASSWORDS_FILE" ]] && break; sleep 1; done
PASSWORD="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$PASSWORDS_FILE")"

TOKEN="$(curl -fsS -X POST "$AIRFLOW_URL/auth/token" -H 'Content-Type: application/json' \
    -d "{\"username\": \"admin\", \"password\": \"$PASSWORD\"}" |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"

echo "Waiting for the DAG '$DAG_ID' to be parsed..."
deadline=$((SECONDS + STARTUP_TIMEOUT))
until curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$AIRFLOW_URL/api/v2/dags/$DAG_ID"; do
    if ! kill -0 "$AIRFLOW_PID" 2>/dev/null; then
        echo "error: airflow exited; see .demo/logs/" >&2
        exit 1
    fi
    if ((SECONDS > deadline)); then
        echo "error: DAG $DAG_ID not parsed within ${STARTUP_TIMEOUT}s. Import errors:" >&2
        curl -fsS -H "Authorization: Bearer $TOKEN" "$AIRFLOW_URL/api/v2/importErrors" >&2 || true
        exit 1
    fi
    sleep 2
done
curl -fsS -o /dev/null -X PATCH "$AIRFLOW_URL/api/v2/dags/$DAG_ID" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"is_paused": false}'

cat <<EOF

==========================================================================================
 Airflow order demo is running
   UI:        http://localhost:$AIRFLOW_PORT   (DAG: $DAG_ID, unpaused)
   Login:     admin / $PASSWORD
   Services:  $SERVICES_URL   (API key in .demo/api_key; audit: GET /audit/<order_id>)

 Trigger an order:
   * UI: open $DAG_ID, press "Trigger"; the form is pre-filled with an example order.
   * CLI: bash scripts/trigger-order.sh [order-id] [payment-method]
       e.g. bash scripts/trigger-order.sh ord-1001 pm_card_declined
   * REST: TOKEN=\$(curl -s -X POST $AIRFLOW_URL/auth/token -H 'Content-Type: application/json' \\
              -d '{"username": "admin", "password": "$PASSWORD"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
           curl -X POST $AIRFLOW_URL/api/v2/dags/$DAG_ID/dagRuns -H "Authorization: Bearer \$TOKEN" \\
              -H 'Content-Type: application/json' -d '{"logical_date": null, "conf": {...order...}}'

 Logs: .demo/logs/ (services and Airflow components), task logs in .demo/airflow/logs/
 Press Ctrl-C to stop.
==========================================================================================
EOF

# Stay in the foreground until a component dies or we are interrupted.
while kill -0 "$AIRFLOW_PID" 2>/dev/null && kill -0 "$SERVICES_PID" 2>/dev/null; do
    sleep 1
done
echo "a component exited unexpectedly; see .demo/logs/" >&2
exit 1
