"""
Time on a real Airflow: high-value approval answered, rejected and left unanswered in Required
Actions; the business deadline firing with its alert; a workflow timeout and its compensation;
the carrier's pickup awaited in the triggerer. Each ends with the services' ledger.
"""

from __future__ import annotations

import time

import pytest

from airflow_order_provider.operators.approval import APPROVE, REJECT
from airflow_order_provider.saga.failure import COMPENSATE
from harness.orders import HIGH_VALUE, alerts, an_order, ledger, settled
from tests.integration.test_failure_e2e import wait_for_decision_request

pytestmark = pytest.mark.integration

DAG_ID = "order_processing"
RUN_TIMEOUT = 180.0
COMPLETED = [
    ("payment", "charge", "succeeded"),
    ("inventory", "reserve", "succeeded"),
    ("shipping", "schedule", "succeeded"),
    ("notification", "email", "succeeded"),
]




def start(client, order, kind):
    return client.trigger(DAG_ID, order, run_id=f"e2e-{kind}-{order['order_id']}")


# -- approval of high-value orders --------------------------------------------------------------------


def test_a_high_value_order_waits_for_approval_and_ships_once_approved(client, services, airflow_env):
    order = an_order(**HIGH_VALUE)
    run_id = start(client, order, "approve")
    request = wait_for_decision_request(client, run_id, "approve_order")
    assert request["options"] == [APPROVE, REJECT] and request["defaults"] == [REJECT]
    assert order["order_id"] in request["subject"] and "2500.00 USD" in request["subject"]
    for shown in ("SKU-GRAND-PIANO", "cus-42", "ada@example.com", "12 St James's Sq", "London"):
        assert shown in request["body"], shown
    assert [op for _, op, _ in ledger(services, order["order_id"])] == ["charge"]  # nothing else yet

    client.respond(DAG_ID, run_id, "approve_order", [APPROVE])
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "success", airflow_env.describe_run(DAG_ID, run_id)
    assert ledger(services, order["order_id"]) == COMPLETED
    assert client.xcom(DAG_ID, run_id, "approve_order")["approved"] is True


def test_a_rejected_order_is_refunded_and_fails(client, services, airflow_env):
    order = an_order(**HIGH_VALUE)
    run_id = start(client, order, "reject")
    wait_for_decision_request(client, run_id, "approve_order")
    client.respond(DAG_ID, run_id, "approve_order", [REJECT])
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed"
    assert ledger(services, order["order_id"]) == [
        ("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]
    result = client.xcom(DAG_ID, run_id, "cancel_order")
    assert result["status"] == "cancelled" and "rejected by" in result["reason"], result
    assert client.task_states(DAG_ID, run_id)["reserve_inventory"] == "upstream_failed"


def test_an_unanswered_approval_counts_as_a_rejection(client, services, airflow_env):
    # approval timeout: 800 s x 0.01 = 8 s in this deployment
    order = an_order(**HIGH_VALUE)
    run_id = start(client, order, "approval-timeout")
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed", airflow_env.describe_run(DAG_ID, run_id)
    assert ledger(services, order["order_id"]) == [
        ("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]
    assert "not approved within" in client.xcom(DAG_ID, run_id, "cancel_order")["reason"]


# -- the business deadline ----------------------------------------------------------------------------


def test_an_order_stuck_past_its_ship_deadline_alerts_operations(client, services, airflow_env):
    # ship deadline: 4000 s x 0.01 = 40 s; the order is stuck in a paused shipping step until then
    services.set_faults("shipping", error_rate=1.0, seed=1)
    order = an_order(on_retries_exhausted={"shipping": "pause"})
    run_id = start(client, order, "deadline")
    wait_for_decision_request(client, run_id, "schedule_shipment")
    subject = f"Order {order['order_id']} missed its ship deadline"
    deadline = time.monotonic() + 90
    while subject not in alerts(services, order["order_id"]):
        assert time.monotonic() < deadline, f"no deadline alert; alerts: {alerts(services, order['order_id'])}"
        time.sleep(1)
    (email,) = [e for e in services.audit(order["order_id"]) if e["details"].get("subject") == subject]
    outbox = services.get(f"/notification/outbox?order_id={order['order_id']}")["messages"]
    body = next(m["body"] for m in outbox if m["subject"] == subject)
    assert "stuck at schedule_shipment (awaiting_input)" in body, body

    services.clear_faults()
    client.respond(DAG_ID, run_id, "schedule_shipment", [COMPENSATE])
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed"
    assert settled(ledger(services, order["order_id"])) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("inventory", "release", "succeeded"),
        ("payment", "refund", "succeeded"),
    ]


def test_no_deadline_alert_for_orders_that_finished(client, services, airflow_env):
    order = an_order(payment_method="pm_card_declined")
    run_id = start(client, order, "finished-before-deadline")
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed"
    time.sleep(45)  # past the 40 s deadline of this deployment: the deadline fires for the failed run
    assert alerts(services, order["order_id"]) == []


# -- workflow timeout and the carrier's pickup ----------------------------------------------------------


def test_a_workflow_timeout_compensates_what_completed(client, services, airflow_env):
    # 300 s x 0.01 = 3 s for the whole order; the payment alone takes 3.5 s
    services.set_faults("payment", latency_ms=3500, seed=1)
    order = an_order(workflow_timeout_seconds=300)
    run_id = start(client, order, "workflow-timeout")
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed"
    states = client.task_states(DAG_ID, run_id)
    assert "WorkflowTimeoutError" in client.xcom(DAG_ID, run_id, "cancel_order")["reason"]
    if states["process_payment"] == "failed":
        # A loaded machine took more than the 3 s to start the payment: its checkpoint stopped the
        # order before any call, and there is nothing to undo.
        assert ledger(services, order["order_id"]) == []
        return
    assert (states["reserve_inventory"], states["refund_payment"], states["cancel_order"]) == (
        "failed", "success", "success"), states
    assert ledger(services, order["order_id"]) == [
        ("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]


def test_the_carrier_pickup_is_awaited_in_the_triggerer(client, services, airflow_env):
    order = an_order()
    run_id = start(client, order, "pickup")
    # deferred: the wait holds no worker slot; the triggerer polls the shipping service
    client.wait_for_task_state(DAG_ID, run_id, "wait_for_dispatch", {"deferred"}, timeout=RUN_TIMEOUT)
    assert client.task_states(DAG_ID, run_id)["send_confirmation"] in (None, "none", "scheduled")
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "success", airflow_env.describe_run(DAG_ID, run_id)
    assert ledger(services, order["order_id"]) == COMPLETED
    assert client.xcom(DAG_ID, run_id, "wait_for_dispatch")["status"] == "dispatched"
