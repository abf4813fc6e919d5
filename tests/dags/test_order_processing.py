"""
The order_processing DAG: it parses cleanly and cheaply, and real runs through ``dag.test()``
against the reference services leave the ledger exactly as they should.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.airflow_env import REPO
from tests.orders import an_order, ledger

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags["order_processing"]


def states(run):
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_dag_folder_has_no_import_errors(dag):
    assert type(dag.timetable).__name__ == "NullTimetable"  # triggered per order, never on a schedule
    assert dag.task_ids == [
        "validate_order", "process_payment", "reserve_inventory", "schedule_shipment",
        "send_confirmation", "complete_order",
    ]


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


def test_happy_order(dag, service_connections):
    order = an_order()
    run = dag.test(run_conf=order)
    assert run.state == "success", states(run)
    result = run.get_task_instance("complete_order").xcom_pull(task_ids="complete_order")
    entries = service_connections.audit(order["order_id"])
    assert ledger(service_connections, order["order_id"]) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("notification", "email", "succeeded"),
    ]
    assert result["status"] == "completed"
    details = {e["operation"]: e["details"] for e in entries}
    assert result["payment_id"] == details["charge"]["payment_id"]
    assert result["shipment_id"] == details["schedule"]["shipment_id"]
    assert result["tracking_number"] == details["schedule"]["tracking_number"]


def test_premium_order_ships_express(dag, service_connections):
    order = an_order(customer_tier="premium")
    run = dag.test(run_conf=order)
    assert run.state == "success", states(run)
    (schedule,) = [e for e in service_connections.audit(order["order_id"]) if e["operation"] == "schedule"]
    assert schedule["details"]["service_level"] == "express"


def test_the_same_order_twice_charges_once(dag, service_connections):
    order = an_order()
    assert dag.test(run_conf=order).state == "success"
    assert dag.test(run_conf=order).state == "success"
    assert [op for _, op, _ in ledger(service_connections, order["order_id"])] == [
        "charge", "reserve", "schedule", "email"]


def test_a_total_that_does_not_match_fails_validation_before_any_call(dag, service_connections):
    order = an_order(total_amount=2400)
    run = dag.test(run_conf=order)
    assert run.state == "failed"
    assert states(run)["validate_order"] == "failed"
    assert {s for t, s in states(run).items() if t != "validate_order"} == {"upstream_failed"}
    assert service_connections.audit(order["order_id"]) == []


def test_a_missing_field_from_the_api_is_not_filled_from_the_form_defaults(dag, service_connections):
    order = an_order()
    del order["customer_email"]
    run = dag.test(run_conf=order)
    assert states(run)["validate_order"] == "failed"
    assert service_connections.audit(order["order_id"]) == []
