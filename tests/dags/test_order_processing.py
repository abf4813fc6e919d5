"""
The order_processing DAG: it parses cleanly and cheaply, and real runs through ``dag.test()``
against the reference services leave the ledger exactly as they should.

Scenarios that need a person (pause mode) or a clear from the UI run on a real Airflow, in
tests/integration.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.orders import EXAMPLE_ORDER, alerts, an_order, ledger, settled
from tests.airflow_env import REPO

pytestmark = pytest.mark.usefixtures("airflow_db")

FORWARD = [
    "validate_order", "process_payment", "check_order_value", "approve_order", "reserve_inventory",
    "schedule_shipment", "wait_for_dispatch", "send_confirmation",
]
COMPENSATION = ["plan_compensation", "cancel_shipment", "release_inventory", "refund_payment", "cancel_order",
                "roll_forward_order"]


@pytest.fixture(scope="module")
def dag():
    from tests.compat import dag_bag_class

    DagBag = dag_bag_class()

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["order_processing"]
    assert dag.deadline is not None
    # dag.test() of Airflow 3.3.2 cannot finish a successful run of a DAG with a DeadlineAlert: it
    # looks the alert up by its serialized form instead of its id. The deadline runs on a real
    # Airflow in tests/integration; here the DAG runs without it.
    dag.deadline = None
    return dag


def run_order(dag, order):
    """Run one order through ``dag.test()``; return the run, task states and try numbers."""
    run = dag.test(run_conf=order)
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    return run, {t: ti.state for t, ti in tis.items()}, {t: ti.try_number for t, ti in tis.items()}


def outcome(run, task_id):
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id)


def address(**changes):
    return {**EXAMPLE_ORDER["shipping_address"], **changes}


# -- shape ------------------------------------------------------------------------------------------


def test_dag_shape(dag):
    assert type(dag.timetable).__name__ == "NullTimetable"  # triggered per order, never on a schedule
    assert sorted(dag.task_ids) == sorted([*FORWARD, "complete_order", *COMPENSATION])
    assert dag.get_task("plan_compensation").upstream_task_ids == {
        "process_payment", "approve_order", "reserve_inventory", "schedule_shipment", "wait_for_dispatch"}
    assert dag.get_task("plan_compensation").trigger_rule == "one_failed"
    # the step table's rule: refund and release wait for the shipment's cancel, not for each other
    assert dag.get_task("cancel_shipment").upstream_task_ids == {"plan_compensation"}
    assert dag.get_task("release_inventory").upstream_task_ids == {"plan_compensation", "cancel_shipment"}
    assert dag.get_task("refund_payment").upstream_task_ids == {"plan_compensation", "cancel_shipment"}
    assert dag.get_task("cancel_order").upstream_task_ids == {
        "plan_compensation", "cancel_shipment", "release_inventory", "refund_payment"}
    assert {dag.get_task(t).trigger_rule for t in ("release_inventory", "refund_payment", "cancel_order")} == {
        "none_failed_min_one_success"}
    # past the carrier's pickup the order rolls forward, only from the shipment's cancel
    assert dag.get_task("roll_forward_order").upstream_task_ids == {"cancel_shipment"}
    assert dag.get_task("complete_order").upstream_task_ids == {"wait_for_dispatch", "send_confirmation"}
    assert dag.get_task("reserve_inventory").upstream_task_ids == {"check_order_value", "approve_order"}
    assert dag.dagrun_timeout is not None


def test_the_order_tasks_that_change_nothing_are_retried_when_failed_from_outside(dag):
    # A worker killed under one of them (or a try queued and never started) must not fail a healthy
    # order: they call no service that changes anything, so running one again is safe.
    for task_id in ("validate_order", "check_order_value", "plan_compensation", "complete_order", "cancel_order"):
        assert dag.get_task(task_id).retries >= 1, task_id


def test_dag_file_imports_nothing_heavy():
    """Parsing must not pull in HTTP clients or the services: hooks load when a task runs."""
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('requests', 'aiohttp', 'airflow.providers.http.hooks.http', 'order_services',"
        " 'airflow_order_provider.hooks.base') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "dags" / "order_processing.py")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_trigger_form_is_prefilled_with_a_valid_example_order(dag):
    from airflow_order_provider.models import parse_order

    defaults = {name: param.value for name, param in dag.params.items()}
    assert parse_order(defaults).order_id == "ord-1001"


def test_the_order_params_live_on_the_dag_alone(dag):
    """
    Not copied into each task: Airflow would deep-copy them 14 times and validate them again for
    each task when serializing the file. A task still sees them at run time (the DAG's params).
    """
    from airflow.sdk.definitions.param import process_params

    assert {name: dict(task.params) for name, task in dag.task_dict.items() if task.params} == {}
    seen = process_params(dag, dag.get_task("process_payment"), {"order_id": "ord-7"}, suppress_exception=False)
    assert seen["order_id"] == "ord-7"
    assert seen["currency"] == dag.params["currency"]


# -- happy path and idempotency ---------------------------------------------------------------------


def test_happy_order(dag, service_connections):
    order = an_order()
    run, states, tries = run_order(dag, order)
    assert run.state == "success", states
    assert {states[t] for t in COMPENSATION} == {"skipped"}
    assert ledger(service_connections, order["order_id"]) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("notification", "email", "succeeded"),
    ]
    result = outcome(run, "complete_order")
    details = {e["operation"]: e["details"] for e in service_connections.audit(order["order_id"])}
    assert result["status"] == "completed" and result["confirmation_sent"] is True
    assert result["payment_id"] == details["charge"]["payment_id"]
    assert result["shipment_id"] == details["schedule"]["shipment_id"]
    assert result["tracking_number"] == details["schedule"]["tracking_number"]


def test_premium_order_ships_express(dag, service_connections):
    order = an_order(customer_tier="premium")
    run, states, _ = run_order(dag, order)
    assert run.state == "success", states
    (schedule,) = [e for e in service_connections.audit(order["order_id"]) if e["operation"] == "schedule"]
    assert schedule["details"]["service_level"] == "express"


def test_the_same_order_twice_charges_once(dag, service_connections):
    order = an_order()
    assert run_order(dag, order)[0].state == "success"
    assert run_order(dag, order)[0].state == "success"
    assert [op for _, op, _ in ledger(service_connections, order["order_id"])] == [
        "charge", "reserve", "schedule", "email"]


# -- bad input ----------------------------------------------------------------------------------------


def test_a_total_that_does_not_match_fails_validation_before_any_call(dag, service_connections):
    order = an_order(total_amount=2400)
    run, states, tries = run_order(dag, order)
    assert run.state == "failed"
    assert states["validate_order"] == "failed"
    assert tries["validate_order"] == 1  # a bad order is never retried
    assert {s for t, s in states.items() if t in FORWARD[1:]} == {"upstream_failed"}
    assert {states[t] for t in COMPENSATION} == {"skipped"}
    assert service_connections.audit(order["order_id"]) == []


def test_a_missing_field_from_the_api_is_not_filled_from_the_form_defaults(dag, service_connections):
    order = an_order()
    del order["customer_email"]
    run, states, _ = run_order(dag, order)
    assert states["validate_order"] == "failed"
    assert service_connections.audit(order["order_id"]) == []


# -- errors no retry can fix: one try, then exactly the right compensations ---------------------------


@pytest.mark.parametrize(
    "payment_method", ["pm_card_declined", "pm_card_fraud", "pm_card_insufficient_funds", "pm_card_expired"]
)
def test_a_refused_card_is_tried_once_and_nothing_is_refunded(dag, service_connections, payment_method):
    order = an_order(payment_method=payment_method)
    run, states, tries = run_order(dag, order)
    assert run.state == "failed"
    assert (states["process_payment"], tries["process_payment"]) == ("failed", 1)
    assert ledger(service_connections, order["order_id"]) == [("payment", "charge", "failed")]
    assert [states[t] for t in ("cancel_shipment", "release_inventory", "refund_payment")] == ["skipped"] * 3
    result = outcome(run, "cancel_order")
    assert result["status"] == "cancelled" and result["compensated"] == []
    assert result["failed_step"] == "process_payment"
    assert payment_method.split("_card_")[1].split("_")[0] in result["reason"].lower()


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"items": [{"sku": "SKU-DISCONTINUED", "quantity": 1, "unit_price": 2500}]}, "ItemDiscontinuedError"),
        ({"shipping_address": address(region="unserviced")}, "RegionNotServicedError"),
    ],
)
def test_inventory_refusal_refunds_the_payment(dag, service_connections, changes, error):
    order = an_order(**changes)
    run, states, tries = run_order(dag, order)
    assert run.state == "failed"
    assert (states["reserve_inventory"], tries["reserve_inventory"]) == ("failed", 1)
    assert ledger(service_connections, order["order_id"]) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "failed"),
        ("payment", "refund", "succeeded"),
    ]
    assert (states["release_inventory"], states["refund_payment"]) == ("skipped", "success")
    assert error in outcome(run, "cancel_order")["reason"]


def test_undeliverable_address_releases_then_refunds(dag, service_connections):
    order = an_order(shipping_address=address(line1="1 UNDELIVERABLE Road"))
    run, states, tries = run_order(dag, order)
    assert run.state == "failed"
    assert (states["schedule_shipment"], tries["schedule_shipment"]) == ("failed", 1)
    # the release and the refund run side by side: neither waits for the other
    assert settled(ledger(service_connections, order["order_id"])) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "failed"),
        ("inventory", "release", "succeeded"),
        ("payment", "refund", "succeeded"),
    ]
    result = outcome(run, "cancel_order")
    assert [c["task"] for c in result["compensated"]] == ["release_inventory", "refund_payment"]
    assert result["status"] == "cancelled" and "AddressUndeliverableError" in result["reason"]


# -- transient trouble: retries under the policy -------------------------------------------------------


def test_payment_failing_half_the_time_is_retried_and_charged_once(dag, service_connections):
    # seed 3 at 50 %: the first two charges fail (each followed by the step's question what is in
    # effect, which finds nothing: a 503 before the service acted), the third succeeds
    service_connections.set_faults("payment", error_rate=0.5, seed=3)
    order = an_order()
    run, states, tries = run_order(dag, order)
    assert run.state == "success", states
    assert tries["process_payment"] == 3
    assert ledger(service_connections, order["order_id"]) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("notification", "email", "succeeded"),
    ]


def test_shipping_always_down_is_tried_three_times_then_compensated(dag, service_connections):
    # seed 4 at 75 %: the three tries get 503 (each followed by the step's own question what is in
    # effect, answered or not), then the service is back for the planner's question (a 503 may
    # hide a shipment made: the planner asks the service before it decides)
    service_connections.set_faults("shipping", error_rate=0.75, seed=4)
    order = an_order()
    run, states, tries = run_order(dag, order)
    assert run.state == "failed"
    assert (states["schedule_shipment"], tries["schedule_shipment"]) == ("failed", 3)
    assert settled(ledger(service_connections, order["order_id"])) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("inventory", "release", "succeeded"),
        ("payment", "refund", "succeeded"),
    ]
    assert states["cancel_shipment"] == "skipped"  # a 503 means no shipment was made
    assert "ServiceUnavailableError" in outcome(run, "cancel_order")["reason"]
    assert alerts(service_connections, order["order_id"]) == [
        f"Order {order['order_id']}: schedule_shipment failed after 3 tries"]


def test_confirmation_never_sent_still_completes_the_order_with_an_alert(dag, service_connections, capfd):
    service_connections.set_faults("notification", error_rate=1.0, seed=1)
    order = an_order()
    run, states, tries = run_order(dag, order)
    assert run.state == "success", states
    assert (states["send_confirmation"], tries["send_confirmation"]) == ("failed", 10)
    assert states["complete_order"] == "success"
    assert {states[t] for t in COMPENSATION} == {"skipped"}
    result = outcome(run, "complete_order")
    assert result["status"] == "completed" and result["confirmation_sent"] is False
    assert [op for _, op, _ in ledger(service_connections, order["order_id"])] == ["charge", "reserve", "schedule"]
    output = capfd.readouterr().out
    assert f"ORDER ALERT [critical] Order {order['order_id']}: send_confirmation failed after 10 tries" in output
    assert "the customer was not told" in output


def test_fail_mode_undoes_nothing_and_alerts(dag, service_connections, capfd):
    service_connections.set_faults("shipping", error_rate=1.0, seed=1)
    order = an_order(on_retries_exhausted={"shipping": "fail"})
    run, states, tries = run_order(dag, order)
    assert run.state == "failed"
    assert tries["schedule_shipment"] == 3
    assert states["plan_compensation"] == "success"  # it ran, and its log says why nothing is undone
    assert {states[t] for t in COMPENSATION[1:]} == {"skipped"}
    assert [op for _, op, _ in ledger(service_connections, order["order_id"])] == ["charge", "reserve"]
    assert "Nothing was undone (on_retries_exhausted=fail)" in capfd.readouterr().out
    # operations got the alert in the notification service's outbox too
    assert alerts(service_connections, order["order_id"]) == [
        f"Order {order['order_id']}: schedule_shipment failed after 3 tries"]


def test_a_refusal_is_business_as_usual_and_raises_no_alert(dag, service_connections):
    order = an_order(payment_method="pm_card_declined")
    run_order(dag, order)
    assert service_connections.audit(order["order_id"]) and alerts(service_connections, order["order_id"]) == []


# -- time ------------------------------------------------------------------------------------------


def test_a_hung_call_is_cut_off_by_the_step_timeout_and_retried_without_charging_twice(
    dag, service_connections, monkeypatch
):
    # The payment service answers after 6 s; the step timeout is 5 s (30 s scaled, never below 5 s).
    service_connections.set_faults("payment", latency_ms=6000, seed=1)
    # The service recovers as soon as the first try is cut off.
    payment = dag.get_task("process_payment")
    monkeypatch.setattr(payment, "on_retry_callback", [lambda context: service_connections.clear_faults()])
    order = an_order()
    run, states, tries = run_order(dag, order)
    assert run.state == "success", states
    assert tries["process_payment"] == 2
    # the first, cut-off call was carried out by the service; the retry got its stored answer
    assert [op for _, op, _ in ledger(service_connections, order["order_id"])] == [
        "charge", "reserve", "schedule", "email"]


def test_an_order_past_its_workflow_timeout_is_compensated(dag, service_connections):
    # 300 s x time_scale 0.01 = 3 s; the payment takes 3.5 s (within its 5 s step timeout)
    service_connections.set_faults("payment", latency_ms=3500, seed=1)
    order = an_order(workflow_timeout_seconds=300)
    run, states, tries = run_order(dag, order)
    assert run.state == "failed"
    assert (states["process_payment"], states["reserve_inventory"], tries["reserve_inventory"]) == (
        "success", "failed", 1)
    assert ledger(service_connections, order["order_id"]) == [
        ("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]
    assert "WorkflowTimeoutError" in outcome(run, "cancel_order")["reason"]


def test_an_order_near_its_ship_deadline_is_expedited(dag, service_connections, monkeypatch):
    # a 1000 s deadline x 0.01 = 10 s, less than the hour (36 s scaled) that triggers expediting
    monkeypatch.setenv("AIRFLOW__ORDER_PROVIDER__SHIP_DEADLINE", "1000")
    order = an_order()
    run, states, _ = run_order(dag, order)
    assert run.state == "success", states
    details = {e["operation"]: e["details"] for e in service_connections.audit(order["order_id"])}
    assert details["reserve"]["priority"] == "high"
    assert details["schedule"]["service_level"] == "express"


def test_an_order_at_the_threshold_skips_approval(dag, service_connections):
    order = an_order(items=[{"sku": "SKU-LAMP", "quantity": 2, "unit_price": 50_000}], total_amount=100_000)
    run, states, _ = run_order(dag, order)
    assert run.state == "success", states
    assert states["approve_order"] == "skipped" and states["reserve_inventory"] == "success"


def test_the_carrier_pickup_is_awaited_before_confirmation(dag, service_connections):
    order = an_order()
    run, states, _ = run_order(dag, order)
    assert run.state == "success", states
    assert outcome(run, "wait_for_dispatch")["status"] == "dispatched"
    shipment = outcome(run, "schedule_shipment")["shipment_id"]
    assert service_connections.get(f"/shipping/shipments/{shipment}")["status"] == "dispatched"


# -- signals: cancel, change the address ------------------------------------------------------------


@pytest.fixture
def signal(monkeypatch):
    """``signal(after_task, key, value)``: record a signal the moment a task succeeds, as the order
    API would between two steps; the Variables are deleted after the test."""
    from airflow.models import Variable

    keys = []

    def send_after(dag, task_id, key, value):
        keys.append(key)
        task = dag.get_task(task_id)
        monkeypatch.setattr(
            task, "on_success_callback", [lambda context: Variable.set(key, value, serialize_json=True)]
        )

    yield send_after
    for key in keys:
        Variable.delete(key)


def test_a_cancel_before_inventory_refunds_only(dag, service_connections, signal):
    from airflow_order_provider.signals import cancel_key

    order = an_order()
    signal(dag, "process_payment", cancel_key(order["order_id"]), {"reason": "customer changed their mind"})
    run, states, _ = run_order(dag, order)
    assert run.state == "failed"
    assert states["reserve_inventory"] == "failed" and states["cancel_order"] == "success"
    assert ledger(service_connections, order["order_id"]) == [
        ("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")]
    result = outcome(run, "cancel_order")
    assert "OrderCancelledError" in result["reason"] and "customer changed their mind" in result["reason"]
    assert alerts(service_connections, order["order_id"]) == []  # a cancellation is no incident


def test_a_cancel_while_awaiting_the_carrier_undoes_everything_in_reverse(dag, service_connections, signal):
    from airflow_order_provider.signals import cancel_key

    order = an_order()
    signal(dag, "schedule_shipment", cancel_key(order["order_id"]), {"reason": "duplicate order"})
    run, states, _ = run_order(dag, order)
    assert run.state == "failed"
    assert states["wait_for_dispatch"] == "failed"
    assert settled(ledger(service_connections, order["order_id"])) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("shipping", "cancel", "succeeded"),
        ("inventory", "release", "succeeded"),
        ("payment", "refund", "succeeded"),
    ]


def test_a_changed_address_is_where_the_shipment_goes(dag, service_connections, signal):
    from airflow_order_provider.signals import address_key

    order = an_order()
    new_address = address(line1="1 New Street", city="Cambridge", postal_code="CB2 1TN")
    signal(dag, "reserve_inventory", address_key(order["order_id"]), {"address": new_address})
    run, states, _ = run_order(dag, order)
    assert run.state == "success", states
    shipment_id = outcome(run, "schedule_shipment")["shipment_id"]
    shipment = service_connections.get(f"/shipping/shipments/{shipment_id}")
    assert (shipment["address"]["line1"], shipment["address"]["city"]) == ("1 New Street", "Cambridge")
