"""
Failure semantics on a real Airflow: pause mode answered through the REST API (Required
Actions), a decision nobody takes, and a compensation that fails for good and is cleared.
Every scenario ends with the services' ledger: nothing charged or reserved without its
shipment or its compensation, nothing done twice.
"""

from __future__ import annotations

import time

import pytest

from airflow_order_provider.policies import policy_for
from airflow_order_provider.saga.failure import ABANDON, COMPENSATE, RETRY
from harness.orders import EXAMPLE_ORDER, alerts, an_order, ledger, settled

pytestmark = pytest.mark.integration

DAG_ID = "order_processing"
RUN_TIMEOUT = 180.0




def start(client, order, kind):
    return client.trigger(DAG_ID, order, run_id=f"e2e-{kind}-{order['order_id']}")


def tries(client, run_id):
    return {ti["task_id"]: ti["try_number"] for ti in client.task_instances(DAG_ID, run_id)}


#: A person answers in seconds. An answer within about half a second of the task parking races
#: Airflow 3.3.2's scheduler: it then takes the parked workload's exit as the resumed task's and
#: fails it ("finished with state success, but the task instance's state attribute is queued").
HUMAN_DELAY = 3.0


def wait_for_decision_request(client, run_id, task_id):
    client.wait_for_task_state(DAG_ID, run_id, task_id, {"awaiting_input"}, timeout=RUN_TIMEOUT)
    (request,) = [d for d in client.hitl_details(DAG_ID, run_id) if d["task_instance"]["task_id"] == task_id]
    time.sleep(HUMAN_DELAY)
    return request


# -- pause: a person decides in Required Actions ------------------------------------------------------


def test_pause_then_retry_completes_the_order(client, services, airflow_env):
    services.set_faults("shipping", error_rate=1.0, seed=1)
    order = an_order(on_retries_exhausted={"shipping": "pause"})
    run_id = start(client, order, "pause-retry")
    request = wait_for_decision_request(client, run_id, "schedule_shipment")
    assert request["options"] == [RETRY, COMPENSATE, ABANDON]
    assert order["order_id"] in request["subject"] and "ServiceUnavailableError" in request["body"]
    assert request["defaults"] == [COMPENSATE]

    services.clear_faults()  # the carrier is back
    client.respond(DAG_ID, run_id, "schedule_shipment", [RETRY])
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "success", airflow_env.describe_run(DAG_ID, run_id)
    assert tries(client, run_id)["schedule_shipment"] == 3  # the retry ran inside the last try
    assert ledger(services, order["order_id"]) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("notification", "email", "succeeded"),
    ]


def test_pause_then_compensate_undoes_the_order(client, services, airflow_env):
    services.set_faults("shipping", error_rate=1.0, seed=1)
    order = an_order(on_retries_exhausted={"shipping": "pause"})
    run_id = start(client, order, "pause-compensate")
    wait_for_decision_request(client, run_id, "schedule_shipment")
    # The carrier answers again: a 503 may hide a shipment made, so the planner asks before undoing.
    services.clear_faults()
    client.respond(DAG_ID, run_id, "schedule_shipment", [COMPENSATE])
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed"
    states = client.task_states(DAG_ID, run_id)
    assert states["schedule_shipment"] == "failed" and states["cancel_order"] == "success", states
    assert settled(ledger(services, order["order_id"])) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("inventory", "release", "succeeded"),
        ("payment", "refund", "succeeded"),
    ]
    result = client.xcom(DAG_ID, run_id, "cancel_order")
    assert result["status"] == "cancelled" and [c["task"] for c in result["compensated"]] == [
        "release_inventory", "refund_payment"]


def test_pause_then_abandon_undoes_nothing_and_alerts(client, services, airflow_env):
    services.set_faults("shipping", error_rate=1.0, seed=1)
    order = an_order(on_retries_exhausted={"shipping": "pause"})
    run_id = start(client, order, "pause-abandon")
    wait_for_decision_request(client, run_id, "schedule_shipment")
    client.respond(DAG_ID, run_id, "schedule_shipment", [ABANDON])
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed"
    states = client.task_states(DAG_ID, run_id)
    assert states["plan_compensation"] == "success"
    assert {states[t] for t in ("cancel_shipment", "release_inventory", "refund_payment", "cancel_order")} == {
        "skipped"}
    assert client.xcom(DAG_ID, run_id, "plan_compensation", key="plan")["outcome"] == "abandoned"
    # Abandoned on purpose: charge and hold stay for a person to settle, and operations know it.
    assert ledger(services, order["order_id"]) == [
        ("payment", "charge", "succeeded"), ("inventory", "reserve", "succeeded")]
    assert alerts(services, order["order_id"]) == [f"Order {order['order_id']} abandoned at schedule_shipment"]


def test_an_unanswered_decision_compensates_after_its_timeout(client, services, airflow_env):
    # inventory's decision timeout is 6 s in this deployment (see conftest)
    services.set_faults("inventory", error_rate=1.0, seed=1)
    order = an_order(on_retries_exhausted={"inventory": "pause"})
    run_id = start(client, order, "pause-timeout")
    wait_for_decision_request(client, run_id, "reserve_inventory")
    services.clear_faults()  # the inventory service answers the planner's question again
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed", airflow_env.describe_run(DAG_ID, run_id)
    assert tries(client, run_id)["reserve_inventory"] == 5
    assert client.xcom(DAG_ID, run_id, "reserve_inventory", key="decision")["choice"] == COMPENSATE
    assert ledger(services, order["order_id"]) == [
        ("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]


# -- a compensation that fails for good, then is cleared -----------------------------------------------


def test_a_failed_compensation_asks_for_manual_intervention_and_a_clear_completes_it(
    client, services, airflow_env
):
    order = an_order(shipping_address={**EXAMPLE_ORDER["shipping_address"], "line1": "9 UNDELIVERABLE Way"})
    run_id = start(client, order, "compensation-fails")
    # As soon as the charge is made, the payment service goes down: the refund will fail for good.
    deadline = time.monotonic() + RUN_TIMEOUT
    while ("payment", "charge", "succeeded") not in ledger(services, order["order_id"]):
        assert time.monotonic() < deadline, "the charge never happened"
        time.sleep(0.1)
    services.set_faults("payment", error_rate=1.0, seed=1)

    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed"
    states = client.task_states(DAG_ID, run_id)
    assert (states["release_inventory"], states["refund_payment"], states["cancel_order"]) == (
        "success", "failed", "upstream_failed"), states
    # an undo is patient: every quick try of the payment service's compensation row, then deferred
    # waits until its horizon
    assert tries(client, run_id)["refund_payment"] == policy_for("payment", compensation=True).attempts
    waited = client.xcom(DAG_ID, run_id, "refund_payment", key="compensation")
    assert waited["state"] == "manual" and waited["calls"] >= 2, waited
    manual = f"MANUAL INTERVENTION NEEDED: order {order['order_id']}: compensation refund_payment failed"
    # (an undo is patient: while it retries, the order may also miss its 40 s ship deadline here)
    assert [a for a in alerts(services, order["order_id"]) if "missed its ship deadline" not in a] == [manual]
    assert ledger(services, order["order_id"])[-1] == ("inventory", "release", "succeeded")

    services.clear_faults()  # someone fixed the payment service
    client.clear_task(DAG_ID, run_id, ["refund_payment"], include_downstream=True)
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed"  # a cancelled order stays failed
    states = client.task_states(DAG_ID, run_id)
    assert (states["refund_payment"], states["cancel_order"]) == ("success", "success"), states
    # a second message resolves the alert
    assert [a for a in alerts(services, order["order_id"]) if "missed its ship deadline" not in a] == [
        manual, f"RESOLVED: order {order['order_id']}: compensation refund_payment succeeded"]
    assert settled(ledger(services, order["order_id"])) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "failed"),
        ("inventory", "release", "succeeded"),
        ("payment", "refund", "succeeded"),
    ]
    assert client.xcom(DAG_ID, run_id, "cancel_order")["status"] == "cancelled"


# -- a service down for a whole order: the refund does not wait for the stock release ---------------


def test_with_inventory_down_the_charge_is_refunded_while_the_release_waits_deferred_until_it_is_back(
    client, services, airflow_env
):
    order = an_order()
    services.set_faults("inventory", error_rate=1.0, seed=1)  # every inventory call answered 503
    run_id = start(client, order, "inventory-down")
    # The release keeps trying without a worker: deferred between calls (the grid shows it so).
    client.wait_for_task_state(DAG_ID, run_id, "release_inventory", {"deferred"}, timeout=RUN_TIMEOUT)
    client.wait_for_task_state(DAG_ID, run_id, "refund_payment", {"success"}, timeout=RUN_TIMEOUT)
    assert client.dag_run(DAG_ID, run_id)["state"] == "running"  # refunded before the run ends
    assert ledger(services, order["order_id"]) == [("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]
    story = client.get(f"/orders/{order['order_id']}")
    assert story["status"] == "compensating"
    assert story["compensations"]["refund_payment"]["state"] == "done"
    release = story["compensations"]["release_inventory"]
    assert release["state"] == "trying" and release["calls"] >= 1 and "ServiceUnavailableError" in release["last_error"]

    services.clear_faults()  # inventory is back
    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "failed", airflow_env.describe_run(DAG_ID, run_id)
    states = client.task_states(DAG_ID, run_id)
    assert (states["release_inventory"], states["cancel_order"]) == ("success", "success"), states
    assert client.get(f"/orders/{order['order_id']}")["status"] == "cancelled"
    # the reservation was never made (every call refused before it was carried out): nothing to release
    assert ledger(services, order["order_id"]) == [("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]
    assert not [a for a in alerts(services, order["order_id"]) if a.startswith("MANUAL")]
