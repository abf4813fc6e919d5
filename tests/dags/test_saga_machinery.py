"""
The saga machinery on its own, without orders: a three-step saga of plain Python tasks, built with
``build_saga`` and run through ``dag.test()``. It knows nothing of services or orders, and still
undoes what completed, latest first, when a step fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("airflow_db")


HERE = Path(__file__).parent / "saga_example"


@pytest.fixture(scope="module")
def dags():
    from tests.compat import dag_bag_class

    DagBag = dag_bag_class()

    bag = DagBag(dag_folder=str(HERE))
    assert bag.import_errors == {}
    return bag.dags


def run_saga(dags, dag_id, ledger):
    return dags[dag_id].test(run_conf={"ledger": str(ledger)})


def entries(ledger: Path) -> list[str]:
    return [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.exists() else []


def test_the_builder_wires_forward_steps_and_the_rollback_as_the_table_says(dags):
    dag = dags["trip"]
    assert dag.get_task("plan").upstream_task_ids == {"a", "b", "c"}
    assert dag.get_task("plan").trigger_rule == "one_failed"
    assert dag.get_task("undo_c").upstream_task_ids == {"plan"}
    assert dag.get_task("undo_b").upstream_task_ids == {"plan", "undo_c"}
    assert dag.get_task("undo_a").upstream_task_ids == {"plan", "undo_b"}
    assert dag.get_task("rolled_back").upstream_task_ids == {"plan", "undo_a", "undo_b", "undo_c"}
    assert dag.get_task("done").upstream_task_ids == {"c"}


def test_a_saga_that_completes_undoes_nothing(dags, tmp_path):
    ledger = tmp_path / "ledger"
    assert run_saga(dags, "trip", ledger).state == "success"
    assert entries(ledger) == ["do a", "do b", "do c"]


def test_a_failed_step_undoes_the_completed_ones_latest_first(dags, tmp_path):
    ledger = tmp_path / "ledger"
    run = run_saga(dags, "trip_fails_at_c", ledger)
    assert run.state == "failed"
    # c failed without a failure record (it could have done something): its undo runs too, first.
    assert entries(ledger) == ["do a", "do b", "undo c", "undo b", "undo a"]
    result = run.get_task_instance("rolled_back").xcom_pull(task_ids="rolled_back")
    assert result["status"] == "cancelled" and result["failed_step"] == "c"
    assert [c["task"] for c in result["compensated"]] == ["undo_c", "undo_b", "undo_a"]


def test_a_first_step_that_fails_leaves_later_steps_alone(dags, tmp_path):
    ledger = tmp_path / "ledger"
    run = run_saga(dags, "trip_fails_at_a", ledger)
    assert run.state == "failed"
    assert entries(ledger) == ["undo a"]
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["undo_b"] == "skipped" and states["undo_c"] == "skipped"
