"""
An order's business status, derived from its DAG run's state and its task instances' states.

Pure functions over plain strings (no database, no FastAPI), so that the rule reads in one place:

* run ``success`` -> ``completed``;
* the saga's roll forward (``roll_forward_order``) succeeded -> ``completed`` (a shipment past its
  point of no return: the order was finished instead of undone; the run itself ends failed);
* run ``failed`` -> ``cancelled`` when the saga's cancelled record (``cancel_order``) succeeded
  (the order was undone), else ``failed``;
* run queued or running:

  - ``compensating`` when a task of the rollback (the planner, a compensation, the cancelled
    record) is running or waiting to run (queued, scheduled, up for retry...), or the planner
    succeeded and the cancelled record has not finished;
  - otherwise the status of the furthest forward step that has been reached (scheduled or beyond),
    as the saga's table names it (``process_payment`` -> ``processing_payment``...);
    ``pending`` while only ``validate_order`` (or nothing) has been reached.

The task ids and the step statuses come from the order saga's table
(:mod:`airflow_order_provider.order_saga`).
"""

from __future__ import annotations

from collections.abc import Mapping

from airflow_order_provider.order_saga import ORDER_DAG_ID, ORDER_SAGA

DAG_ID = ORDER_DAG_ID

#: The forward steps that give the order its status while it runs, in order (from the saga's table).
STEP_STATUS = ORDER_SAGA.statuses

#: Every status an order can have.
STATUSES = (
    "pending",
    *STEP_STATUS.values(),
    "completed",
    "compensating",
    "cancelled",
    "failed",
)

#: Every forward task of the DAG, in the order an order goes through them.
FORWARD_TASKS = ORDER_SAGA.forward_path

#: The compensation path, in the order it runs.
COMPENSATION_TASKS = ORDER_SAGA.rollback_path
#: The task whose success means the order was undone.
CANCELLED_TASK = ORDER_SAGA.cancelled.task_id
#: The task whose success means the order was finished instead of undone (rolled forward).
ROLL_FORWARD_TASK = ORDER_SAGA.roll_forward.task_id if ORDER_SAGA.roll_forward else None
#: The compensations, latest step first.
UNDO_TASKS = ORDER_SAGA.compensation_ids
#: The task after which nothing can be called back (the carrier has the parcel).
PICKED_UP_TASK = next(step.task_id for step in ORDER_SAGA.steps if step.status == "awaiting_dispatch")

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


def task_state(states: States, task_id: str) -> str | None:
    value = states.get(task_id)
    return None if value in (None, "none", "") else str(value)


def is_compensating(states: States) -> bool:
    """Whether the compensation path is running or about to run."""
    if any(task_state(states, task) in ACTIVE_STATES for task in COMPENSATION_TASKS):
        return True
    plan = ORDER_SAGA.plan.task_id
    return task_state(states, plan) == "success" and task_state(states, CANCELLED_TASK) not in FINISHED_STATES


def furthest_reached(states: States, tasks: tuple[str, ...]) -> str | None:
    """The last of ``tasks`` (in their order) that has been reached (scheduled or beyond)."""
    reached = [task for task in tasks if task_state(states, task) not in NOT_REACHED_STATES]
    return reached[-1] if reached else None


def order_status(run_state: str | None, states: States) -> str:
    """The order's status (one of :data:`STATUSES`) from its run's state and ``{task_id: state}``."""
    run_state = str(run_state) if run_state is not None else None
    if run_state == "success" or (ROLL_FORWARD_TASK and task_state(states, ROLL_FORWARD_TASK) == "success"):
        return "completed"
    if run_state == "failed":
        return "cancelled" if task_state(states, CANCELLED_TASK) == "success" else "failed"
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
        failed = [task for task in FORWARD_TASKS if task_state(states, task) == "failed"]
        if failed:
            return failed[0]
        return furthest_reached(states, COMPENSATION_TASKS) or furthest_reached(states, FORWARD_TASKS)
    return furthest_reached(states, FORWARD_TASKS)


def compensation_story(states: States, waits: Mapping[str, object]) -> dict[str, object]:
    """
    Where each compensation of the order stands, for people: ``{"compensations": {task: {...}},
    "rolled_forward": bool}``. A compensation is ``done``, ``trying`` (with its next try when it
    waits deferred), ``needs_person`` (it gave up: an alert names it), ``waiting`` (for the
    compensations it waits for) or ``not_needed``; compensations never reached are left out.

    :param waits: ``{task: its compensation XCom}`` (``calls``, ``last_error``, ``next_try_at``...).
    """
    story: dict[str, dict[str, object]] = {}
    for task in UNDO_TASKS:
        state = task_state(states, task)
        wait = waits.get(task) if isinstance(waits.get(task), dict) else {}
        if state == "success":
            entry: dict[str, object] = {"state": "done"}
        elif state == "failed":
            entry = {"state": "needs_person"}
        elif state == "skipped":
            entry = {"state": "not_needed"}
        elif state == "upstream_failed":
            entry = {"state": "waiting", "for": list(ORDER_SAGA.compensation_waits_for(task))}
        elif state in ACTIVE_STATES:
            entry = {"state": "trying"}
            if state == "deferred" and isinstance(wait, dict):
                entry["next_try_at"] = wait.get("next_try_at")
        else:
            continue
        if isinstance(wait, dict) and wait:
            entry.update({k: wait.get(k) for k in ("since", "calls", "last_error", "gives_up_at")})
        story[task] = entry
    rolled = bool(ROLL_FORWARD_TASK) and task_state(states, str(ROLL_FORWARD_TASK)) == "success"
    return {"compensations": story, "rolled_forward": rolled}
