"""
Compensation that cannot finish: it never holds the customer's money, and never gives away the
shop's goods. Real runs of the order DAG through ``dag.test()`` against the reference
services, asserting their ledger.

The DAG is parsed with this deployment's policy overrides, as a deployment shortens them: every
undo keeps trying for 2500 s x time_scale 0.01 = 25 s after its quick tries, waiting between calls
the provider's floor of 10 s (the shipped table says hours). ``dag.test()`` runs the triggerer's
wait in line.
"""

from __future__ import annotations

import json
import time

import pytest

from harness.orders import alerts, an_order, ledger
from tests.compat import dag_bag_class
from tests.dags.test_order_processing import outcome, run_order

pytestmark = pytest.mark.usefixtures("airflow_db")

#: What a deployment would put in [order_provider] policy_overrides to shorten the waits.
SHORT_HORIZONS = {
    f"{service}.compensation": {"horizon": 2500, "wait_interval": 100, "max_wait_interval": 200}
    for service in ("payment", "inventory", "shipping")
}

CHARGED = ("payment", "charge", "succeeded")
RESERVED = ("inventory", "reserve", "succeeded")
SHIPPED = ("shipping", "schedule", "succeeded")
REFUNDED = ("payment", "refund", "succeeded")


@pytest.fixture(scope="module")
def patient_dag():
    from tests.airflow_env import REPO

    DagBag = dag_bag_class()  # airflow.models.dagbag on 3.1 (make compat)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__ORDER_PROVIDER__POLICY_OVERRIDES", json.dumps(SHORT_HORIZONS))
        bag = DagBag(dag_folder=str(REPO / "dags"))
        assert bag.import_errors == {}
        dag = bag.dags["order_processing"]
    dag.deadline = None  # dag.test() of Airflow 3.3.2 cannot finish a run with a DeadlineAlert
    assert dag.get_task("release_inventory").policy.horizon.total_seconds() == 2500
    return dag


@pytest.fixture
def callbacks(patient_dag, monkeypatch):
    """``callbacks(task_id, kind, fn)``: run ``fn(context)`` as a task's ``on_<kind>_callback`` for one test."""

    def add(task_id, kind, fn):
        monkeypatch.setattr(patient_dag.get_task(task_id), f"on_{kind}_callback", [fn])

    return add


def undo_record(run, task_id):
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id, key="compensation")


def succeeded(services, order_id):
    return [entry for entry in ledger(services, order_id) if entry[2] == "succeeded"]


def test_inventory_down_for_a_whole_order_refunds_at_once_and_a_release_never_possible_is_manual(
    patient_dag, service_connections
):
    service_connections.set_faults("inventory", error_rate=1.0, seed=1)  # every inventory call: 503
    order = an_order()
    run, states, tries = run_order(patient_dag, order)

    assert run.state == "failed"
    assert states["reserve_inventory"] == "failed"
    # The refund does not wait for the stock release (a hold expires by itself); the release kept
    # trying, deferred, until its horizon, then asked for a person.
    assert (states["refund_payment"], states["release_inventory"], states["cancel_order"]) == (
        "success", "failed", "upstream_failed"), states
    waited = undo_record(run, "release_inventory")
    assert waited["state"] == "manual" and waited["calls"] >= 2, waited
    assert "ServiceUnavailableError" in waited["last_error"]
    assert tries["release_inventory"] == patient_dag.get_task("release_inventory").retries + 1
    assert ledger(service_connections, order["order_id"]) == [CHARGED, REFUNDED]
    assert alerts(service_connections, order["order_id"])[-1] == (
        f"MANUAL INTERVENTION NEEDED: order {order['order_id']}: compensation release_inventory failed")


def test_every_answer_of_the_shipping_step_lost_and_the_parcel_dispatched_rolls_the_order_forward(
    patient_dag, service_connections, callbacks
):
    order = an_order()
    order_id = order["order_id"]

    def answers_lost(context):  # the carrier books every request, and every answer is lost
        service_connections.set_faults("shipping", error_rate=1.0, seed=1, phase="after")

    def carrier_answers_again_once_dispatched(context):
        service_connections.clear_faults()
        deadline = time.monotonic() + 60
        while not any(s["status"] == "dispatched" for s in service_connections.get(
                "/shipping/shipments", params={"order_id": order_id})["shipments"]):
            assert time.monotonic() < deadline, "the carrier never picked the parcel up"
            time.sleep(0.2)

    callbacks("schedule_shipment", "execute", answers_lost)
    callbacks("schedule_shipment", "failure", carrier_answers_again_once_dispatched)
    run, states, _ = run_order(patient_dag, order)

    assert states["schedule_shipment"] == "failed"
    assert states["cancel_shipment"] == "success"
    assert outcome(run, "cancel_shipment")["status"] == "past_point_of_no_return"
    assert {states[t] for t in ("release_inventory", "refund_payment", "cancel_order")} == {"skipped"}, states
    assert states["roll_forward_order"] == "success"
    result = outcome(run, "roll_forward_order")
    assert result["status"] == "completed" and result["rolled_forward"] is True
    assert result["confirmation_sent"] is True
    # one charge, one shipment, one confirmation, no refund, no release
    assert succeeded(service_connections, order_id) == [
        CHARGED, RESERVED, SHIPPED, ("notification", "email", "succeeded")]
    assert f"Order {order_id} rolled forward: completed instead of compensated" in alerts(
        service_connections, order_id)
    shipments = service_connections.get("/shipping/shipments", params={"order_id": order_id})["shipments"]
    assert [s["shipment_id"] for s in shipments] == [result["shipment_id"]]


def test_with_the_carrier_down_while_a_cancel_is_needed_no_refund_goes_out(
    patient_dag, service_connections, callbacks
):
    from airflow.models import Variable

    from airflow_order_provider.signals import cancel_key

    order = an_order()
    key = cancel_key(order["order_id"])

    def customer_cancels_and_the_carrier_goes_down(context):
        Variable.set(key, {"reason": "changed my mind"}, serialize_json=True)
        service_connections.set_faults("shipping", error_rate=1.0, seed=1)

    callbacks("schedule_shipment", "success", customer_cancels_and_the_carrier_goes_down)
    try:
        run, states, _ = run_order(patient_dag, order)
    finally:
        Variable.delete(key)

    assert run.state == "failed"
    # The cancel kept trying until its horizon; money never went back while the goods could leave.
    assert (states["cancel_shipment"], states["refund_payment"], states["release_inventory"]) == (
        "failed", "upstream_failed", "upstream_failed"), states
    assert undo_record(run, "cancel_shipment")["state"] == "manual"
    assert succeeded(service_connections, order["order_id"]) == [CHARGED, RESERVED, SHIPPED]
    assert alerts(service_connections, order["order_id"])[-1] == (
        f"MANUAL INTERVENTION NEEDED: order {order['order_id']}: compensation cancel_shipment failed")
