"""
order_shape_noop: the shape of ``order_processing`` with tasks that do nothing (the benchmark's baseline).

Same 15 task ids, upstreams and trigger rules as ``dags/order_processing.py``, ``schedule=None``;
every task is a PythonOperator that returns at once, so each one goes through the scheduler, the
executor and a worker exactly like an order task (EmptyOperator would never reach a worker).
``check_order_value`` branches to ``reserve_inventory``: the happy path, skipping ``approve_order``;
``complete_order`` skips ``plan_compensation`` and what follows it, as the order DAG's does.

It imports Airflow only, never ``airflow_order_provider``, so that its parse time is Airflow's own
(benchmark P4). ``tests/unit/test_benchmark_shape.py`` checks that it keeps the order DAG's shape.
It lives in ``benchmarks/``, not in the DAG bundle; ``python -m benchmarks.run`` puts both side by side.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
from airflow.sdk import DAG, TriggerRule


def _noop() -> None:
    return None


def _happy_path() -> str:
    return "reserve_inventory"


#: What the order DAG's complete_order skips when the order completes (the saga's rollback path).
_ROLLBACK = ["plan_compensation", "cancel_shipment", "release_inventory", "refund_payment", "cancel_order",
             "roll_forward_order"]


def _complete() -> None:
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    raise DownstreamTasksSkipped(tasks=_ROLLBACK)


with DAG(
    dag_id="order_shape_noop",
    description="Benchmark baseline: the order DAG's shape, every task a no-op",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["benchmark"],
) as dag:

    def noop(task_id: str, trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS) -> PythonOperator:
        return PythonOperator(task_id=task_id, python_callable=_noop, trigger_rule=trigger_rule)

    validate_order = noop("validate_order")
    process_payment = noop("process_payment")
    check_order_value = BranchPythonOperator(task_id="check_order_value", python_callable=_happy_path)
    approve_order = noop("approve_order")
    reserve_inventory = noop("reserve_inventory", TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    schedule_shipment = noop("schedule_shipment")
    wait_for_dispatch = noop("wait_for_dispatch")
    send_confirmation = noop("send_confirmation")
    # Skips the rollback itself, as the order's complete_order does.
    complete_order = PythonOperator(task_id="complete_order", python_callable=_complete,
                                    trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    plan_compensation = noop("plan_compensation", TriggerRule.ONE_FAILED)
    cancel_shipment = noop("cancel_shipment", TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    release_inventory = noop("release_inventory", TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    refund_payment = noop("refund_payment", TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    cancel_order = noop("cancel_order", TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    roll_forward_order = noop("roll_forward_order")

    # The happy path and the approval branch.
    validate_order >> process_payment >> check_order_value >> [approve_order, reserve_inventory]
    approve_order >> reserve_inventory >> schedule_shipment >> wait_for_dispatch
    wait_for_dispatch >> [send_confirmation, complete_order]
    send_confirmation >> complete_order
    # Compensation: the refund and the release wait for the shipment's cancel (the order saga's
    # undo_after), not for each other; a dispatched parcel rolls the order forward.
    [approve_order, process_payment, reserve_inventory, schedule_shipment, wait_for_dispatch] >> plan_compensation
    plan_compensation >> [cancel_shipment, release_inventory, refund_payment, cancel_order]
    cancel_shipment >> [release_inventory, refund_payment, cancel_order, roll_forward_order]
    [release_inventory, refund_payment] >> cancel_order
