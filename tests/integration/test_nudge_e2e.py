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
run is what is read. The second test shows the consequence with orders parked in approval: the
run is examined before the parked ones when the DAG is unpaused. What it saves with hundreds of open
runs is measured by ``make bench`` (P3).
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from harness.common import read_env_file
from harness.orders import HIGH_VALUE, an_order, ledger
from tests.e2e import DEPLOY_ENV_FILE

pytestmark = pytest.mark.integration

DAG_ID = "order_processing"
#: Orders kept waiting for approval: running runs that the scheduler examines in turn.
PARKED = 40
#: Runs the scheduler examines per loop, as the shipped settings say.
BATCH = int(read_env_file(DEPLOY_ENV_FILE)["AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE"])
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


def _decision(client, run_id):
    stamp = client.dag_run(DAG_ID, run_id)["last_scheduling_decision"]
    return datetime.fromisoformat(stamp) if stamp else None


def _next_examination(client, run_id, previous, timeout=120.0):
    """The run's decision stamp as soon as it differs from ``previous`` (a later read could see a later one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stamp = _decision(client, run_id)
        if stamp is not None and stamp != previous:
            return stamp
        time.sleep(0.05)
    raise AssertionError(f"{run_id} was not examined within {timeout} s of the unpause")


def test_with_orders_parked_a_run_whose_step_finished_is_examined_before_them(client, services, airflow_env):
    # The suite's approval timeout (8 s) would end the parked orders before the measurement: the
    # scheduler, whose task processes set the timeout, runs with a long one for this test.
    airflow_env.deployment.restart("scheduler", {"AIRFLOW__ORDER_PROVIDER__APPROVAL_TIMEOUT": "360000"})
    try:
        _examined_before_the_parked(client, services, airflow_env)
    finally:
        airflow_env.deployment.restart("scheduler")


def _examined_before_the_parked(client, services, airflow_env):
    parked = []
    for n in range(PARKED):
        parked_order = an_order(**HIGH_VALUE)
        run = client.trigger(DAG_ID, parked_order, run_id=f"e2e-parked-{n}-{parked_order['order_id']}")
        parked.append((parked_order, run))
    for _, parked_run in parked:
        client.wait_for_task_state(DAG_ID, parked_run, "approve_order", {"awaiting_input"}, timeout=300)

    services.set_faults("payment", latency_ms=3000)  # the charge takes 3 s: time to pause the DAG
    order = an_order()
    run_id = client.trigger(DAG_ID, order, run_id=f"e2e-nudge-many-{order['order_id']}")
    client.wait_for_task_state(DAG_ID, run_id, "process_payment", {"running"})
    client.set_paused(DAG_ID, True)
    try:
        client.wait_for_task_state(DAG_ID, run_id, "process_payment", {"success", "failed"})
        # paused: no examination stamps any of them now
        before = {parked_run: _decision(client, parked_run) for _, parked_run in parked}
        reported = _decision(client, run_id)
        assert reported is None
        waiting = [r for _, r in parked if client.task_instance(DAG_ID, r, "approve_order")["state"] == "awaiting_input"]
        assert len(waiting) == PARKED, f"only {len(waiting)} of {PARKED} orders still wait for approval"
    finally:
        client.set_paused(DAG_ID, False)
        services.clear_faults()
    # the scheduler's first loops after the unpause: the run's first examination stamps it
    examined_at = _next_examination(client, run_id, reported)
    ahead = [
        parked_run for _, parked_run in parked
        if (stamp := _decision(client, parked_run)) is not None and stamp != before[parked_run] and stamp < examined_at
    ]
    # One loop examines BATCH runs: the nudged run and at most BATCH - 1 others. Without the nudge
    # its turn comes after every parked run examined less recently than its step was queued: all
    # but the few the round robin reached in the second or two before the pause
    # (checked: with the nudge off, 36 of the 40 were examined before it).
    assert len(ahead) <= BATCH - 1, f"{len(ahead)} of {PARKED} parked runs were examined before it: {ahead}"

    assert client.wait_for_run(DAG_ID, run_id, timeout=180) == "success", airflow_env.describe_run(DAG_ID, run_id)
    assert ledger(services, order["order_id"]) == SHIPPED
    for _, parked_run in parked:  # let them go: a rejection refunds the charge
        client.respond(DAG_ID, parked_run, "approve_order", ["Reject"])
    for parked_order, parked_run in parked:
        assert client.wait_for_run(DAG_ID, parked_run, timeout=300) == "failed"
        assert ledger(services, parked_order["order_id"]) == [
            ("payment", "charge", "succeeded"), ("payment", "refund", "succeeded")
        ]
