"""
A deployment without one of the order pools (as if ``airflow orders setup`` had been skipped), on a
real Airflow: the order API's health answer names the missing pool, the order says which step waits
for it, and once the pool exists (what the setup command creates) the order completes, with the
services' ledger exact. Airflow itself only logs "Tasks using non-existent pool ... will not be
scheduled" in the scheduler's log.
"""

from __future__ import annotations

import pytest

from harness import scenario
from harness.orders import an_order, ledger

pytestmark = pytest.mark.integration

DAG_ID = "order_processing"
POOL = "order_notification"
HAPPY_LEDGER = [
    ("payment", "charge", "succeeded"),
    ("inventory", "reserve", "succeeded"),
    ("shipping", "schedule", "succeeded"),
    ("notification", "email", "succeeded"),
]


def wait_until(check, what: str, timeout: float = 180.0):
    return scenario.wait_until(check, what, timeout=timeout, poll=0.5)


def test_a_missing_pool_is_named_and_the_order_completes_once_it_exists(client, airflow_env, order_services):
    health = client.get("/orders/health")
    assert health["status"] == "ok", health["problems"]
    pool = client.get(f"/api/v2/pools/{POOL}")
    client.request("DELETE", f"/api/v2/pools/{POOL}", expected=(204,))
    try:
        health = client.get("/orders/health")
        assert health["status"] == "degraded"
        assert health["problems"] == [
            f"pool {POOL!r} does not exist: its tasks are never scheduled (run `airflow orders setup`)"
        ]
        assert health["pools"][POOL] == {"slots": None, "expected_slots": 2}

        order = an_order()
        client.request("POST", "/orders", json=order, expected=(201,))
        waiting = wait_until(
            lambda: client.get(f"/orders/{order['order_id']}")["waiting_for"], "the order names the pool it waits for"
        )
        assert waiting == [
            f"send_confirmation waits for pool {POOL!r}, which does not exist: it is never scheduled"
            " (run `airflow orders setup`)"
        ]
        assert client.task_states(DAG_ID, order["order_id"])["send_confirmation"] == "scheduled"
        assert ledger(order_services, order["order_id"]) == HAPPY_LEDGER[:3]
    finally:
        client.request(
            "POST", "/api/v2/pools", expected=(201,),
            json={"name": POOL, "slots": pool["slots"], "description": pool.get("description"),
                  "include_deferred": pool.get("include_deferred", False)},
        )
    assert client.wait_for_run(DAG_ID, order["order_id"]) == "success"
    detail = client.get(f"/orders/{order['order_id']}")
    assert (detail["status"], detail["waiting_for"]) == ("completed", [])
    assert ledger(order_services, order["order_id"]) == HAPPY_LEDGER
    assert client.get("/orders/health")["status"] == "ok"
