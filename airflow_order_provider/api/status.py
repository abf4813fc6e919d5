"""
An order's business status, derived from its DAG run's state and its task instances' states.

Pure functions over plain strings (no database, no FastAPI), so that the rule reads in one place:

* run ``success`` -> ``completed``;
* run ``failed`` -> ``cancelled`` when ``cancel_order`` succeeded (the order was undone), else ``failed``;
* run queued or running:

  - ``compensating`` when a compensation task (``plan_compensation``, ``cancel_shipment``,
    ``release_inventory``, ``refund_payment``, ``cancel_order``) is running or waiting to run
    (queued, scheduled, up for retry...), or ``plan_compensation`` succeeded and ``cancel_order``
    has not finished;
  - otherwise the status of the furthest forward step that has been reached (scheduled or beyond):
    ``process_payment`` -> ``processing_payment``, ``approve_order`` -> ``awaiting_approval``,
    ``reserve_inventory`` -> ``reserving_inventory``, ``schedule_shipment`` -> ``scheduling_shipment``,
    ``wait_for_dispatch`` -> ``awaiting_dispatch``, ``send_confirmation`` -> ``sending_confirmation``;
    ``pending`` while only ``validate_order`` (or nothing) has been reached.
"""

from __future__ import annotations

from collections.abc import Mapping

DAG_ID = "order_processing"

STATUSES = (
    "pending",
    "processing_payment",
    "awaiting_approval",
    "reserving_inventory",
    "scheduling_shipment",
    "awaiting_dispatch",
    "sending_confirmation",
    "completed",
    "compensating",
    "cancelled",
    "failed",
)

#: Every forward task of the DAG, in the order an order goes through them.
FORWARD_TASKS = (
    "validate_order",
    "process_payment",
    "check_order_value",
    "approve_order",
    "reserve_inventory",
    "schedule_shipment",
    "wait_for_dispatch",
    "send_confirmation",
    "complete_order",
)

#: The forward steps that give the order its status while it runs.
STEP_STATUS = {
    "process_payment": "processing_payment",
    "approve_order": "awaiting_approval",
    "reserve_inventory": "reserving_inventory",
    "schedule_shipment": "scheduling_shipment",
    "wait_for_dispatch": "awaiting_dispatch",
    "send_confirmation": "sending_confirmation",
}

#: The compensation path, in the order it runs.
COMPENSATION_TASKS = ("plan_compensation", "cancel_shipment", "release_inventory", "refund_payment", "cancel_order")

#: Task-instance states of a task that is running or will run (again) soon.
ACTIVE_STATES = frozenset(
    {"running", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "restarting", "deferred",
     "awaiting_input"}
)
#: States of a task that will not run (again) on its own.
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: States of a task that has not been reached: it never ran and will not run as things stand.
NOT_REACHED_STATES = frozenset({None, "none", "", "skipped", "upstream_failed", "removed"})

#: Statuses an order can no longer leave.
FINAL_STATUSES = frozenset({"completed", "cancelled", "failed"})

States = Mapping[str, "str | None"]


def _state(states: States, task_id: str) -> str | None:
    value = states.get(task_id)
    return None if value in (None, "none", "") else str(value)


def is_compensating(states: States) -> bool:
    """Whether the compensation path is running or about to run."""
    if any(_state(states, task) in ACTIVE_STATES for task in COMPENSATION_TASKS):
        return True
    return _state(states, "plan_compensation") == "success" and _state(states, "cancel_order") not in FINISHED_STATES


def furthest_reached(states: States, tasks: tuple[str, ...]) -> str | None:
    """The last of ``tasks`` (in their order) that has been reached (scheduled or beyond)."""
    reached = [task for task in tasks if _state(states, task) not in NOT_REACHED_STATES]
    return reached[-1] if reached else None


def order_status(run_state: str | None, states: States) -> str:
    """The order's status (one of :data:`STATUSES`) from its run's state and ``{task_id: state}``."""
    run_state = str(run_state) if run_state is not None else None
    if run_state == "success":
        return "completed"
    if run_state == "failed":
        return "cancelled" if _state(states, "cancel_order") == "success" else "failed"
    if is_compensating(states):
        return "compensating"
    step = furthest_reached(states, tuple(STEP_STATUS))
    return STEP_STATUS[step] if step else "pending"


def current_step(run_state: str | None, states: States) -> str | None:
    """
    The task the order is at (or ended at), for people: the furthest compensation task reached
    when the order is being (or was) undone; else the first forward step that failed when the order
    failed; else the furthest forward task reached. None before any task was reached.
    """
    status = order_status(run_state, states)
    if status in ("compensating", "cancelled"):
        return furthest_reached(states, COMPENSATION_TASKS)
    if status == "failed":
        failed = [task for task in FORWARD_TASKS if _state(states, task) == "failed"]
        if failed:
            return failed[0]
        return furthest_reached(states, COMPENSATION_TASKS) or furthest_reached(states, FORWARD_TASKS)
    return furthest_reached(states, FORWARD_TASKS)
