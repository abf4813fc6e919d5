"""
A rush of orders against the running demo (``make demo``), then the proof that it went through.

    make rush N=100            # or: .venv/bin/python scripts/rush.py --orders 100

Sends N orders at once through ``POST /orders`` (the order API on Airflow's API server), from
``--clients`` clients (20), each a fresh order of the example customer (every fifth one premium).
Then it waits until every order is final (``completed``, ``cancelled`` or ``failed``) and checks:

* every order completed, and the services' audit ledger (``GET /audit/{order_id}``) shows exactly
  one charge, one reservation, one shipment and one confirmation email, all succeeded;
* every Airflow component is healthy afterwards (``GET /api/v2/monitor/health``).

Prints the figures (POST latencies, drain time) and exits 1 when anything is off. The demo's
addresses and credentials come from ``.demo/demo.env``, written by ``scripts/demo.sh``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / ".demo"
FINAL = {"completed", "cancelled", "failed"}
EXPECTED_LEDGER = [
    ("payment", "charge", "succeeded"),
    ("inventory", "reserve", "succeeded"),
    ("shipping", "schedule", "succeeded"),
    ("notification", "email", "succeeded"),
]
#: Alerts to operations are emails too; they are not part of an order's own ledger.
OPS_EMAIL = "ops@example.com"


def demo_settings() -> dict[str, str]:
    path = DEMO_DIR / "demo.env"
    if not path.exists():
        sys.exit("no .demo/demo.env: start the demo first (make demo), and wait until it says it is running")
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def an_order(n: int, prefix: str) -> dict:
    return {
        "order_id": f"{prefix}-{n:04d}",
        "customer_id": f"cus-{n % 50}",
        "customer_email": "ada@example.com",
        "customer_tier": "premium" if n % 5 == 0 else "standard",
        "items": [{"sku": "SKU-RED-MUG", "quantity": 2, "unit_price": 1250}],
        "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London",
                             "postal_code": "SW1Y 4JH", "country": "GB", "region": "eu-west"},
        "total_amount": 2500,
        "currency": "USD",
        "payment_method": "pm_card_ok",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for every order to be final")
    args = parser.parse_args(argv)

    settings = demo_settings()
    airflow, services = settings["AIRFLOW_URL"], settings["SERVICES_URL"]
    password = json.loads(Path(settings["PASSWORDS_FILE"]).read_text())["admin"]
    api_key = (DEMO_DIR / "api_key").read_text().strip()
    token = requests.post(f"{airflow}/auth/token", json={"username": "admin", "password": password},
                          timeout=60).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    prefix = f"rush-{uuid.uuid4().hex[:6]}"
    orders = [an_order(n, prefix) for n in range(args.orders)]

    def post(order: dict) -> tuple[int, float, str]:
        started = time.monotonic()
        try:
            response = requests.post(f"{airflow}/orders", json=order, headers=headers, timeout=120)
            return response.status_code, time.monotonic() - started, response.text[:200]
        except requests.RequestException as exc:
            return 0, time.monotonic() - started, str(exc)

    print(f"Sending {args.orders} orders at once ({args.clients} clients) to {airflow}/orders ...")
    since = datetime.now(timezone.utc)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        answers = list(pool.map(post, orders))
    sent = time.monotonic() - started
    latencies = sorted(latency for _, latency, _ in answers)
    refused = [(o["order_id"], code, text) for o, (code, _, text) in zip(orders, answers, strict=True) if code != 201]
    print(f"  all sent in {sent:.1f}s; POST /orders p50 {statistics.median(latencies):.2f}s, "
          f"p95 {latencies[int(0.95 * (len(latencies) - 1))]:.2f}s, max {latencies[-1]:.2f}s")
    if refused:
        print(f"FAILED: {len(refused)} orders refused, e.g. {refused[:3]}")
        return 1

    wanted = {o["order_id"] for o in orders}
    statuses: dict[str, str] = {}
    last_report = 0.0
    while True:
        answer = requests.get(f"{airflow}/orders", params={"since": since.isoformat(), "limit": 500},
                              headers=headers, timeout=60)
        answer.raise_for_status()
        statuses = {o["order_id"]: o["status"] for o in answer.json()["orders"] if o["order_id"] in wanted}
        final = sum(1 for s in statuses.values() if s in FINAL)
        elapsed = time.monotonic() - started
        if final == len(wanted):
            break
        if elapsed - last_report >= 15:
            print(f"  {elapsed:5.0f}s: {final}/{len(wanted)} final")
            last_report = elapsed
        if elapsed > args.timeout:
            print(f"FAILED: only {final} of {len(wanted)} orders final after {args.timeout:.0f}s")
            return 1
        time.sleep(2)
    drain = time.monotonic() - started
    print(f"  every order final after {drain:.1f}s")

    problems = []
    not_completed = {k: v for k, v in statuses.items() if v != "completed"}
    if not_completed:
        problems.append(f"{len(not_completed)} orders not completed: {dict(list(not_completed.items())[:5])}")
    for order in orders:
        audit = requests.get(f"{services}/audit/{order['order_id']}", headers={"Authorization": f"Bearer {api_key}"},
                             timeout=30)
        audit.raise_for_status()
        entries = [(e["service"], e["operation"], e["status"]) for e in audit.json()["entries"]
                   if not (e["operation"] == "email" and e["details"].get("to") == OPS_EMAIL)]
        if entries != EXPECTED_LEDGER:
            problems.append(f"ledger of {order['order_id']}: {entries}")
    health = requests.get(f"{airflow}/api/v2/monitor/health", timeout=30).json()
    unhealthy = {k: v for k, v in health.items() if isinstance(v, dict) and v.get("status") not in (None, "healthy")}
    if unhealthy:
        problems.append(f"unhealthy components: {unhealthy}")

    print(json.dumps({"orders": args.orders, "drain_s": round(drain, 1), "sent_s": round(sent, 1),
                      "post_p50_s": round(statistics.median(latencies), 2), "post_max_s": round(latencies[-1], 2),
                      "completed": args.orders - len(not_completed)}))
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems[:20]))
        return 1
    print(f"OK: {args.orders} orders completed, each charged, reserved, shipped and emailed exactly once; "
          "every Airflow component healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
