"""End-to-end order scenarios: REST-triggered runs of ``order_processing`` on a real Airflow.

The scenarios share one Airflow deployment (``airflow_env``) and one reference-services process
(``order_services``). (a) to (c) use the same order, in this order: (a) the happy run, (b) the same
order triggered again under another run id, (c) the first run's ``process_payment`` cleared and run
again. (d) is an order whose total does not match its lines.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from harness import NOT_RUN_TI_STATES, report
from harness.orders import _is_alert, an_order

pytestmark = pytest.mark.integration

DAG_ID = "order_processing"
RUN_TIMEOUT = 180.0
BUSINESS_OPERATIONS = ("charge", "reserve", "schedule", "email")


def make_order(kind: str, **overrides: Any) -> dict[str, Any]:
    return an_order(order_id=f"ord-e2e-{kind}-{uuid.uuid4().hex[:10]}", **overrides)


def run_id_for(kind: str) -> str:
    return f"e2e-{kind}-{uuid.uuid4().hex[:8]}"


def operations(audit: list[dict]) -> Counter:
    """``Counter({(operation, status): n})`` of an order's audit entries, alerts to ops left out (as
    :func:`harness.orders.ledger` does: a late order's deadline alert is no business operation)."""
    return Counter((entry["operation"], entry["status"]) for entry in audit if not _is_alert(entry))


def assert_exactly_one_of_each(audit: list[dict], context: str) -> None:
    """One succeeded charge, reserve, schedule and email; nothing else (no refund/release/cancel)."""
    expected = Counter({(op, "succeeded"): 1 for op in BUSINESS_OPERATIONS})
    got = operations(audit)
    assert got == expected, (
        f"{context}: audit should hold exactly one succeeded {', '.join(BUSINESS_OPERATIONS)}; got {dict(got)}\n"
        f"entries: {json.dumps(audit, indent=1, default=str)[:4000]}"
    )


def entry(audit: list[dict], operation: str) -> dict:
    return next(e for e in audit if e["operation"] == operation and e["status"] == "succeeded")


def run_and_wait(airflow_env, conf: dict, kind: str) -> tuple[str, str, float]:
    started = time.monotonic()
    run_id = airflow_env.client.trigger(DAG_ID, conf, run_id=run_id_for(kind))
    state = airflow_env.client.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    return run_id, state, time.monotonic() - started


@pytest.fixture(scope="module")
def order_dag(airflow_env, order_services):
    """The DAG, parsed and unpaused; no fault injection left over from other tests."""
    order_services.clear_faults()
    started = time.monotonic()
    airflow_env.client.wait_for_dag(DAG_ID, timeout=120)
    airflow_env.client.unpause(DAG_ID)
    airflow_env.timings["dag_ready_s"] = time.monotonic() - started
    return DAG_ID


@pytest.fixture(scope="module")
def happy_order(airflow_env, order_dag):
    """One happy order run to completion: ``(conf, run_id, state, seconds)``."""
    conf = make_order("happy")
    run_id, state, seconds = run_and_wait(airflow_env, conf, "happy")
    airflow_env.timings["happy_run_s"] = seconds
    return conf, run_id, state, seconds


def test_a_happy_order_completes(airflow_env, order_services, happy_order):
    conf, run_id, state, _ = happy_order
    assert state == "success", airflow_env.describe_run(DAG_ID, run_id)

    states = airflow_env.client.task_states(DAG_ID, run_id)
    assert states.get("complete_order") == "success", states

    audit = order_services.audit(conf["order_id"])
    assert_exactly_one_of_each(audit, "happy order")

    result = airflow_env.client.xcom(DAG_ID, run_id, "complete_order")
    assert isinstance(result, dict), f"complete_order XCom is not a dict: {result!r}"
    assert result.get("status") == "completed", result
    assert result.get("order_id") == conf["order_id"], result

    # The ids in the order's result are the ones the services recorded.
    charge, schedule = entry(audit, "charge"), entry(audit, "schedule")
    charge_details = json.dumps(charge.get("details"), default=str)
    schedule_details = json.dumps(schedule.get("details"), default=str)
    assert result.get("payment_id") and result["payment_id"] in charge_details, (result, charge)
    assert result.get("shipment_id") and result["shipment_id"] in schedule_details, (result, schedule)
    assert result.get("tracking_number") and result["tracking_number"] in schedule_details, (result, schedule)


def test_b_same_order_again_charges_nothing_twice(airflow_env, order_services, happy_order):
    conf, first_run_id, first_state, _ = happy_order
    assert first_state == "success", "the happy run failed; see test_a"

    run_id, state, seconds = run_and_wait(airflow_env, conf, "repeat")
    airflow_env.timings["repeat_run_s"] = seconds
    assert run_id != first_run_id
    assert state == "success", airflow_env.describe_run(DAG_ID, run_id)
    assert_exactly_one_of_each(order_services.audit(conf["order_id"]), "same order triggered twice")

    first = airflow_env.client.xcom(DAG_ID, first_run_id, "complete_order")
    second = airflow_env.client.xcom(DAG_ID, run_id, "complete_order")
    for key in ("payment_id", "shipment_id", "tracking_number"):
        assert second.get(key) == first.get(key), (key, first, second)


def test_c_cleared_payment_is_not_charged_again(airflow_env, order_services, happy_order):
    conf, run_id, first_state, _ = happy_order
    assert first_state == "success", "the happy run failed; see test_a"
    client = airflow_env.client

    started = time.monotonic()
    cleared = client.clear_task(DAG_ID, run_id, ["process_payment"], include_downstream=True)
    cleared_ids = {ti["task_id"] for ti in cleared}
    assert "process_payment" in cleared_ids, cleared
    state = client.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    airflow_env.timings["cleared_rerun_s"] = time.monotonic() - started
    assert state == "success", airflow_env.describe_run(DAG_ID, run_id)

    tries = {ti["task_id"]: ti["try_number"] for ti in client.task_instances(DAG_ID, run_id)}
    assert tries["process_payment"] >= 2, f"process_payment did not run again: {tries}"

    audit = order_services.audit(conf["order_id"])
    charges = [e for e in audit if e["operation"] == "charge"]
    assert len(charges) == 1, f"expected exactly one charge after the re-run, got {charges}"
    assert_exactly_one_of_each(audit, f"after clearing process_payment (cleared: {sorted(cleared_ids)})")


def test_d_total_mismatch_fails_validation_only(airflow_env, order_services, order_dag):
    conf = make_order("mismatch", total_amount=9999)
    run_id, state, seconds = run_and_wait(airflow_env, conf, "mismatch")
    airflow_env.timings["mismatch_run_s"] = seconds
    description = airflow_env.describe_run(DAG_ID, run_id)
    assert state == "failed", description

    states = airflow_env.client.task_states(DAG_ID, run_id)
    assert states.get("validate_order") == "failed", description
    ran = {
        task: s
        for task, s in states.items()
        if task != "validate_order" and s not in NOT_RUN_TI_STATES
    }
    assert not ran, f"tasks other than validate_order ran: {ran}\n{description}"
    assert order_services.audit(conf["order_id"]) == [], "the services were called for an invalid order"


@pytest.fixture(scope="module", autouse=True)
def _print_timings(request, airflow_env):
    yield
    line = ", ".join(f"{k}={v:.1f}" for k, v in airflow_env.timings.items() if k.endswith("_s"))
    report(request.config, f"timings (s): {line}")
