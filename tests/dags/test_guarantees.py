"""
The saga's promise under lost answers, re-runs, changing requests and late cancels: an order
either completes once or is fully undone, and nothing is charged, reserved, shipped or emailed
twice. Each case runs the real DAG through ``dag.test()`` against the reference services and
asserts their audit ledger.
"""

from __future__ import annotations

import pytest

from harness.orders import EXAMPLE_ORDER, alerts, an_order, ledger
from tests.dags.test_order_processing import COMPENSATION, dag, outcome, run_order  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("airflow_db")

HAPPY = [
    ("payment", "charge", "succeeded"),
    ("inventory", "reserve", "succeeded"),
    ("shipping", "schedule", "succeeded"),
    ("notification", "email", "succeeded"),
]


@pytest.fixture
def callbacks(dag, monkeypatch):  # noqa: F811
    """``callbacks(task_id, kind, fn)``: run ``fn(context)`` as a task's ``on_<kind>_callback`` for one
    test (an outside event at an exact point of the run: a fault cleared, a signal sent)."""

    def add(task_id, kind, fn):
        monkeypatch.setattr(dag.get_task(task_id), f"on_{kind}_callback", [fn])

    return add


def test_a_second_run_of_a_compensated_order_changes_nothing(dag, service_connections):  # noqa: F811
    # seed 3 at 90 %: the inventory service refuses the five tries (503; each try's question what is
    # in effect answered or not), then answers the planner
    service_connections.set_faults("inventory", error_rate=0.9, seed=3)
    order = an_order()
    first, states, tries = run_order(dag, order)
    assert first.state == "failed"
    assert (states["reserve_inventory"], tries["reserve_inventory"]) == ("failed", 5)
    undone = [("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]
    assert ledger(service_connections, order["order_id"]) == undone

    service_connections.clear_faults()
    second, states, _ = run_order(dag, order)  # the same order, everything healthy
    assert second.state == "failed"
    assert states["process_payment"] == "failed" and states["reserve_inventory"] == "upstream_failed"
    assert ledger(service_connections, order["order_id"]) == undone  # nothing reserved, shipped or emailed
    assert "OrderAlreadyUndoneError" in outcome(second, "cancel_order")["reason"]


def test_a_charge_whose_answer_was_lost_is_refunded_although_later_tries_fail_otherwise(
    dag, service_connections, callbacks  # noqa: F811
):
    # Every call is carried out, then answered 503: try 1 charges, tries 2 and 3 get the replay's 503.
    service_connections.set_faults("payment", error_rate=1.0, seed=1, phase="after")
    callbacks("process_payment", "failure", lambda context: service_connections.clear_faults())
    order = an_order()
    run, states, tries = run_order(dag, order)
    assert run.state == "failed"
    assert (states["process_payment"], tries["process_payment"]) == ("failed", 3)
    assert ledger(service_connections, order["order_id"]) == [
        ("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]
    result = outcome(run, "cancel_order")
    assert [c["task"] for c in result["compensated"]] == ["refund_payment"]


def test_a_shipping_request_that_changed_between_tries_adopts_the_shipment_made(
    dag, service_connections, callbacks  # noqa: F811
):
    from airflow.models import Variable

    from airflow_order_provider.signals import address_key

    order = an_order()
    key = address_key(order["order_id"])

    def between_tries(context):
        # try 1 was carried out but its answer lost; the next try sends another address
        Variable.set(key, {"address": {**EXAMPLE_ORDER["shipping_address"], "line1": "9 Other Road"}},
                     serialize_json=True)
        service_connections.clear_faults()

    service_connections.set_faults("shipping", error_rate=1.0, seed=1, phase="after")
    callbacks("schedule_shipment", "retry", between_tries)
    try:
        run, states, tries = run_order(dag, order)
    finally:
        Variable.delete(key)
    assert run.state == "success", states
    assert tries["schedule_shipment"] == 2
    assert ledger(service_connections, order["order_id"]) == HAPPY
    shipment_id = outcome(run, "schedule_shipment")["shipment_id"]
    shipment = service_connections.get(f"/shipping/shipments/{shipment_id}")
    assert shipment["address"]["line1"] == EXAMPLE_ORDER["shipping_address"]["line1"]  # what try 1 booked


def test_a_shipment_whose_answer_was_lost_is_adopted_at_once_not_retried_into_the_carrier(
    dag, service_connections, callbacks  # noqa: F811
):
    """
    The shipping request is carried out, then answered 503 (draw 1 of seed 1 at 50 %); asking the
    service what is in effect for the order succeeds (draw 2): the step adopts the one shipment it
    finds instead of failing its try. (Retried, it waited while the carrier could pick the parcel
    up; out of tries, its compensation met a dispatched parcel: 27 of 500 chaos orders, seed 261126.)
    """
    service_connections.set_faults("shipping", error_rate=0.5, seed=1, phase="after")
    callbacks("schedule_shipment", "success", lambda context: service_connections.clear_faults())
    order = an_order()
    try:
        run, states, tries = run_order(dag, order)
    finally:
        service_connections.clear_faults()
    assert run.state == "success", states
    assert tries["schedule_shipment"] == 1
    assert ledger(service_connections, order["order_id"]) == HAPPY
    shipments = service_connections.get("/shipping/shipments", params={"order_id": order["order_id"]})
    assert [s["shipment_id"] for s in shipments["shipments"]] == [outcome(run, "schedule_shipment")["shipment_id"]]


def test_a_cancel_read_after_the_pickup_does_not_drop_the_confirmation(
    dag, service_connections, callbacks  # noqa: F811
):
    from airflow.models import Variable

    from airflow_order_provider.signals import cancel_key

    order = an_order()
    key = cancel_key(order["order_id"])
    callbacks("wait_for_dispatch", "success",
              lambda context: Variable.set(key, {"reason": "too late"}, serialize_json=True))
    try:
        run, states, _ = run_order(dag, order)
    finally:
        Variable.delete(key)
    assert run.state == "success", states
    assert ledger(service_connections, order["order_id"]) == HAPPY
    result = outcome(run, "complete_order")
    assert result["confirmation_sent"] is True
    assert result["cancel_request"]["honoured"] is False
    assert {states[t] for t in COMPENSATION} == {"skipped"}


def test_a_wrong_api_key_is_never_retried_and_alerts_operations(dag, service_connections, monkeypatch):  # noqa: F811
    # The payment connection carries a key the service does not know: not a business refusal.
    monkeypatch.setenv(
        "AIRFLOW_CONN_ORDER_PAYMENT_DEFAULT",
        f"http://:not-the-key@{service_connections.host}:{service_connections.port}",
    )
    order = an_order()
    run, states, tries = run_order(dag, order)
    assert run.state == "failed"
    assert (states["process_payment"], tries["process_payment"]) == ("failed", 1)
    assert ledger(service_connections, order["order_id"]) == []  # nothing moved
    (subject,) = alerts(service_connections, order["order_id"])
    assert subject.startswith(f"Order {order['order_id']}: process_payment was refused by the payment service")
