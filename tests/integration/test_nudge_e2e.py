"""
A step that finishes marks its run to be examined first ([order_provider] nudge_runs), on a real
Airflow: shown by the run's ``last_scheduling_decision``, not by time.

Airflow 3.3's scheduler takes the running runs with ``last_scheduling_decision`` NULL first, then
the least recently examined, at most ``max_dagruns_per_loop_to_schedule`` per loop
(``DagRun.get_running_dag_runs_to_examine``); each examination stamps the decision. A task's state
report through the Execution API does not touch its run, so without the nudge the run keeps the
stamp of its last examination and waits its turn among every open run. The DAG is paused while the
step finishes, so that no examination stamps the run after the report (the paused-DAG sweep only
examines runs whose decision is older than their tasks' last update): what the report left on the
run is what is read. The scheduler's ordering itself, and what it saves with hundreds of open runs,
is measured by ``make bench`` (P3).
"""

from __future__ import annotations

import pytest

from harness.orders import an_order, ledger

pytestmark = pytest.mark.integration

DAG_ID = "order_processing"
SHIPPED = [
    ("payment", "charge", "succeeded"),
    ("inventory", "reserve", "succeeded"),
    ("shipping", "schedule", "succeeded"),
    ("notification", "email", "succeeded"),
]


def test_a_finished_step_marks_its_run_to_be_examined_first(client, services, airflow_env):
    services.set_faults("payment", latency_ms=3000)  # the charge takes 3 s: time to pause the DAG
    order = an_order()
    run_id = client.trigger(DAG_ID, order, run_id=f"e2e-nudge-{order['order_id']}")
    client.wait_for_task_state(DAG_ID, run_id, "process_payment", {"running"})
    examined = client.dag_run(DAG_ID, run_id)["last_scheduling_decision"]
    client.set_paused(DAG_ID, True)
    try:
        assert examined is not None  # the scheduler examined the run to start the step
        client.wait_for_task_state(DAG_ID, run_id, "process_payment", {"success", "failed"})
        after_report = client.dag_run(DAG_ID, run_id)["last_scheduling_decision"]
    finally:
        client.set_paused(DAG_ID, False)
        services.clear_faults()
    assert after_report is None, (
        f"the step's success report left the run's last_scheduling_decision at {after_report} (was {examined}): "
        "the run waits for the round robin over every open run"
    )
    assert client.wait_for_run(DAG_ID, run_id, timeout=180) == "success", airflow_env.describe_run(DAG_ID, run_id)
    assert ledger(services, order["order_id"]) == SHIPPED
