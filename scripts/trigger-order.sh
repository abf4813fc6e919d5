#!/usr/bin/env bash
# Trigger one order on the running demo (make demo) through the REST API.
#
#   bash scripts/trigger-order.sh [ORDER_ID] [PAYMENT_METHOD] [TOTAL_AMOUNT]
#   bash scripts/trigger-order.sh ord-1001 pm_card_declined
#
# The order is the example one (2 x SKU-RED-MUG at 12.50 USD to London); PAYMENT_METHOD picks a
# test outcome (pm_card_ok, pm_card_declined, pm_card_fraud, ...), a TOTAL_AMOUNT other than 2500
# fails validation. Prints the run id and where to watch it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AIRFLOW_URL="http://127.0.0.1:${AIRFLOW_PORT:-8080}"
export PASSWORDS_FILE="${AIRFLOW_HOME:-$ROOT/.demo/airflow}/simple_auth_manager_passwords.json.generated"
export ORDER_ID="${1:-ord-$(date +%s)}" PAYMENT_METHOD="${2:-pm_card_ok}" TOTAL_AMOUNT="${3:-2500}"
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || PY=python3

exec "$PY" - <<'PYEOF'
import json, os, sys, urllib.error, urllib.parse, urllib.request

base = os.environ["AIRFLOW_URL"]
try:
    password = json.load(open(os.environ["PASSWORDS_FILE"]))["admin"]
except OSError as exc:
    sys.exit(f"cannot read the admin password ({exc}); is the demo running (make demo)?")


def call(method, path, body, token=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        sys.exit(f"{method} {path} answered {exc.code}: {exc.read().decode()[:2000]}")
    except urllib.error.URLError as exc:
        sys.exit(f"cannot reach Airflow at {base}: {exc.reason}; is the demo running (make demo)?")


token = call("POST", "/auth/token", {"username": "admin", "password": password})["access_token"]
order = {
    "order_id": os.environ["ORDER_ID"],
    "customer_id": "cus-42",
    "customer_email": "ada@example.com",
    "customer_tier": "standard",
    "items": [{"sku": "SKU-RED-MUG", "quantity": 2, "unit_price": 1250}],
    "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London",
                         "postal_code": "SW1Y 4JH", "country": "GB", "region": "eu-west"},
    "total_amount": int(os.environ["TOTAL_AMOUNT"]),
    "currency": "USD",
    "payment_method": os.environ["PAYMENT_METHOD"],
}
run = call("POST", "/api/v2/dags/order_processing/dagRuns", {"logical_date": None, "conf": order}, token)
print(f"order {order['order_id']}: run {run['dag_run_id']} ({run['state']})")
print(f"watch it: http://localhost:{base.rsplit(':', 1)[1]}/dags/order_processing/runs/{urllib.parse.quote(run['dag_run_id'], safe='')}")
PYEOF
