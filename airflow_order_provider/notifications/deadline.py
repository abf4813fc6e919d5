"""
The business deadline: "an order ships within 24 hours of payment".

:func:`order_missed_ship_deadline` is the callback of the DAG's ``DeadlineAlert`` (Airflow 3's
replacement for SLAs). It runs in the triggerer when an order's deadline passes. Airflow removes a
deadline only when the run succeeds, so the callback also fires for orders that already failed or
were cancelled: it checks the run's state and stays quiet for those.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DeadlineAlert

    from airflow_order_provider.saga import Saga

log = logging.getLogger(__name__)

FINISHED_RUN_STATES = frozenset({"success", "failed"})
WAITING_STATES = ("running", "deferred", "awaiting_input", "up_for_retry", "up_for_reschedule", "queued", "scheduled")


def stuck_at(task_states: dict[str, str | None], forward_steps: list[str]) -> str:
    """The step an unfinished order is at: the first forward step not yet done."""
    for step in forward_steps:
        if task_states.get(step) in WAITING_STATES:
            return f"{step} ({task_states[step]})"
    for step in forward_steps:
        if task_states.get(step) not in ("success", "skipped"):
            return f"before {step}"
    return "its last step"


async def order_missed_ship_deadline(
    context: dict[str, Any],
    forward_steps: list[str] | None = None,
    alert_email: str | None = None,
    conn_id: str | None = None,
    **_: Any,
) -> None:
    """Alert operations that an order missed its ship deadline, naming the step it is stuck at."""
    from asgiref.sync import sync_to_async

    dag_run = context.get("dag_run") or {}
    state = dag_run.get("state")
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
    from airflow_order_provider.order_conf import order_id_of

    order_id = order_id_of(dag_run) or run_id
    if state in FINISHED_RUN_STATES:
        log.info("Order %s missed its ship deadline but its run already %s: no alert", order_id, state)
        return

    steps = list(forward_steps or [])
    where = "an unknown step"
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        found = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=dag_run.get("dag_id"), run_ids=[run_id], task_ids=steps or None
        )
        where = stuck_at(dict(found.get(run_id, {})), steps)
    except Exception as exc:  # the alert matters more than the detail
        log.warning("Could not read the task states of %s: %s", run_id, exc)

    deadline = (context.get("deadline") or {}).get("deadline_time")
    subject = f"Order {order_id} missed its ship deadline"
    body = (
        f"Order {order_id} (run {run_id}) has not shipped by its deadline {deadline}. "
        f"It is stuck at {where}. Expedite it or settle it by hand."
    )
    log.error("ORDER ALERT [critical] %s\n%s", subject, body)

    from airflow_order_provider.notifications.alerts import send_alert_email

    await sync_to_async(send_alert_email)(
        order_id=str(order_id),
        subject=subject,
        body=body,
        idempotency_key=f"{order_id}:alert.{run_id}.ship_deadline",
        alert_email=alert_email,
        conn_id=conn_id,
    )


def ship_deadline_alert(saga: Saga) -> DeadlineAlert:
    """
    The DAG's business deadline: the order ships within ``ship_deadline`` (24 h, scaled) of being
    placed, or :func:`order_missed_ship_deadline` alerts operations with the step it is stuck at.
    (On Airflow 3.1, of being queued: see
    :func:`~airflow_order_provider.version_compat.order_deadline_reference`.)
    """
    from airflow_order_provider.deadlines import install_dag_test_fixes_where_core_is_loaded
    from airflow_order_provider.policies import order_times
    from airflow_order_provider.version_compat import deadline_alert_classes, order_deadline_reference

    install_dag_test_fixes_where_core_is_loaded()  # dag.test()'s upstream bugs, where they apply
    DeadlineAlert, _, AsyncCallback = deadline_alert_classes()
    return DeadlineAlert(
        reference=order_deadline_reference(),
        interval=order_times().scaled("ship_deadline"),
        callback=AsyncCallback(order_missed_ship_deadline, kwargs={"forward_steps": list(saga.step_ids)}),
    )
