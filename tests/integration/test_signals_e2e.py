"""
Signals to running orders on a real Airflow, through the order API (``/orders`` on Airflow's API
server): a cancel honoured at the next checkpoint, compensating what completed in reverse order,
and a changed shipping address, accepted until the shipment is scheduled. Each ends with the ledger.
"""

from __future__ import annotations

import pytest
import requests

from harness.orders import EXAMPLE_ORDER, HIGH_VALUE, alerts, an_order, ledger, settled

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

    state = client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT)
    entries = services.audit(order["order_id"])
    done = ledger(services, order["order_id"])
    made = [("payment", "charge", "succeeded"), ("inventory", "reserve", "succeeded"),
            ("shipping", "schedule", "succeeded")]
    # The carrier picks the parcel up 10 s after it is booked (the session's dispatch delay). On a
    # quiet machine the cancel is read first; on a loaded one the carrier may win the race, and
    # each outcome is a correct one that loses nothing:
    if ("shipping", "cancel", "succeeded") in done:  # the cancel won: everything undone, the cancel first
        assert state == "failed", airflow_env.describe_run(DAG_ID, run_id)
        assert settled(done) == [*made, ("shipping", "cancel", "succeeded"), ("inventory", "release", "succeeded"),
                                 ("payment", "refund", "succeeded")]
        at = {e["operation"]: e["created_at"] for e in entries if e["operation"] in ("cancel", "release", "refund")}
        assert at["cancel"] < at["release"] and at["cancel"] < at["refund"], at
    elif state == "success":  # the trigger saw the pickup first: the carrier's answer wins
        assert done == [*made, ("notification", "email", "succeeded")]
        assert client.xcom(DAG_ID, run_id, "complete_order")["cancel_request"]["honoured"] is False
    else:  # the cancel was read, then the parcel left before it could be called back: the order rolls
        # forward: completed with its charge and shipment, the confirmation sent, nothing refunded
        assert done == [*made, ("shipping", "cancel", "failed"), ("notification", "email", "succeeded")], done
        assert client.task_states(DAG_ID, run_id)["roll_forward_order"] == "success"
        assert orders_api("GET", f"/{order['order_id']}").json()["status"] == "completed"
        assert alerts(services, order["order_id"]) == [
            f"Order {order['order_id']} rolled forward: completed instead of compensated"]


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


def test_a_cancel_during_approval_ends_the_wait_and_refunds(client, services, orders_api, airflow_env):
    from tests.integration.test_failure_e2e import wait_for_decision_request

    order = an_order(**HIGH_VALUE)
    run_id = start(orders_api, order)
    wait_for_decision_request(client, run_id, "approve_order")  # parked, then a person's delay
    answer = orders_api("POST", f"/{order['order_id']}/cancel", {"reason": "found it cheaper"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["cancel_request"]["ended_approval"] is True
    # Airflow's REST API recorded the answer under the name of the user who cancelled
    (request,) = [d for d in client.hitl_details(DAG_ID, run_id) if d["task_instance"]["task_id"] == "approve_order"]
    assert request["chosen_options"] == ["Reject"]
    assert request["responded_by_user"]["name"] == client.username

    # no approver answers: the cancel ends the wait (the approval timeout is 8 s here; this is sooner)
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed", airflow_env.describe_run(DAG_ID, run_id)
    assert ledger(services, order["order_id"]) == [("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]
    result = client.xcom(DAG_ID, run_id, "cancel_order")
    assert "OrderCancelledError" in result["reason"] and "found it cheaper" in result["reason"]


def test_a_cancel_once_the_carrier_has_the_parcel_is_refused(client, services, orders_api, airflow_env):
    services.set_faults("notification", latency_ms=3000, seed=1)  # the confirmation takes 3 s
    order = an_order()
    run_id = start(orders_api, order)
    # the parcel left: the carrier's pickup was seen; the confirmation is on its way
    client.wait_for_task_state(DAG_ID, run_id, "wait_for_dispatch", {"success"}, timeout=RUN_TIMEOUT)
    answer = orders_api("POST", f"/{order['order_id']}/cancel", {"reason": "too late"})
    assert answer.status_code == 409, answer.text
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "success", airflow_env.describe_run(DAG_ID, run_id)
    assert [op for _, op, _ in ledger(services, order["order_id"])] == ["charge", "reserve", "schedule", "email"]
