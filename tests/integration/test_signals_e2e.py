"""
Signals to running orders on a real Airflow, through the order API (``/orders`` on Airflow's API
server): a cancel honoured at the next checkpoint, compensating what completed in reverse order,
and a changed shipping address, accepted until the shipment is scheduled. Each ends with the ledger.
"""

from __future__ import annotations

import pytest
import requests

from tests.orders import EXAMPLE_ORDER, an_order, ledger

pytestmark = pytest.mark.integration

DAG_ID = "order_processing"
RUN_TIMEOUT = 180.0


@pytest.fixture
def orders_api(airflow_env, client):
    """``call(method, path, json)`` on the order API with the admin's bearer token."""
    session = requests.Session()

    def call(method, path, json=None):
        headers = {"Authorization": f"Bearer {client.login()}"}
        return session.request(method, f"{airflow_env.base_url}/orders{path}", json=json, headers=headers, timeout=30)

    return call


def start(orders_api, order):
    answer = orders_api("POST", "", order)
    assert answer.status_code == 201, answer.text
    return answer.json()["run_id"]


def test_a_cancel_while_paying_refunds_only(client, services, orders_api, airflow_env):
    services.set_faults("payment", latency_ms=3000, seed=1)  # the charge takes 3 s
    order = an_order()
    before = services.received()["payment"]
    run_id = start(orders_api, order)
    # The observable point: the charge has reached the payment service (a task shown `running` may
    # not have reached its checkpoint yet, and a cancel read there charges nothing at all).
    services.wait_received("payment", before + 1, timeout=RUN_TIMEOUT)
    answer = orders_api("POST", f"/{order['order_id']}/cancel", {"reason": "ordered by mistake"})
    assert answer.status_code == 202, answer.text
    assert orders_api("POST", f"/{order['order_id']}/cancel", {"reason": "again"}).json()["cancel_request"][
        "reason"] == "ordered by mistake"  # idempotent: the first request stands

    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed", airflow_env.describe_run(DAG_ID, run_id)
    assert ledger(services, order["order_id"]) == [
        ("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]
    status = orders_api("GET", f"/{order['order_id']}").json()
    assert status["status"] == "cancelled"
    assert "ordered by mistake" in client.xcom(DAG_ID, run_id, "cancel_order")["reason"]
    assert orders_api("POST", f"/{order['order_id']}/cancel", {"reason": "late"}).status_code == 409


def test_a_cancel_after_the_shipment_is_scheduled_undoes_it_all_in_reverse(
    client, services, orders_api, airflow_env
):
    order = an_order()
    run_id = start(orders_api, order)
    client.wait_for_task_state(DAG_ID, run_id, "wait_for_dispatch", {"deferred"}, timeout=RUN_TIMEOUT)
    assert orders_api("GET", f"/{order['order_id']}").json()["status"] == "awaiting_dispatch"
    assert orders_api("POST", f"/{order['order_id']}/cancel", {"reason": "found it cheaper"}).status_code == 202

    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed", airflow_env.describe_run(DAG_ID, run_id)
    entries = services.audit(order["order_id"])
    assert ledger(services, order["order_id"]) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("shipping", "cancel", "succeeded"),
        ("inventory", "release", "succeeded"),
        ("payment", "refund", "succeeded"),
    ]
    undo = [e["created_at"] for e in entries if e["operation"] in ("cancel", "release", "refund")]
    assert undo == sorted(undo)


def test_an_address_changed_before_shipping_is_where_the_shipment_goes(
    client, services, orders_api, airflow_env
):
    services.set_faults("payment", latency_ms=3000, seed=1)
    order = an_order()
    run_id = start(orders_api, order)
    client.wait_for_task_state(DAG_ID, run_id, "process_payment", {"running"}, timeout=RUN_TIMEOUT)
    new_address = {**EXAMPLE_ORDER["shipping_address"], "line1": "1 New Street", "city": "Cambridge"}
    answer = orders_api("POST", f"/{order['order_id']}/shipping-address", new_address)
    assert answer.status_code == 200, answer.text

    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "success", airflow_env.describe_run(DAG_ID, run_id)
    shipment_id = client.xcom(DAG_ID, run_id, "schedule_shipment")["shipment_id"]
    shipment = services.get(f"/shipping/shipments/{shipment_id}")
    assert (shipment["address"]["line1"], shipment["address"]["city"]) == ("1 New Street", "Cambridge")
    # once the shipment is scheduled the address can no longer change
    late = orders_api("POST", f"/{order['order_id']}/shipping-address", EXAMPLE_ORDER["shipping_address"])
    assert late.status_code == 409
