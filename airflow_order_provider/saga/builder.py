"""
Add a saga's tasks to a DAG: the forward steps in order, and the rollback in reverse.

Call :func:`build_saga` inside a ``with DAG(...)`` block (or a ``TaskGroup``)::

    with DAG("my_orders", schedule=None, ...):
        tasks = build_saga(ORDER_SAGA, overrides={"process_payment": {"retries": 5}})

What it builds, for steps ``a`` (gated), ``b``, ``c`` (best effort)::

    start >> gate_a >> [a, b];  a >> b >> c;  [b, c] >> complete
    [a, b] >> plan (one_failed) >> [undo_b, undo_a] >> cancelled
    undo_b >> undo_a                 (only when the table says so: a's undo_after names b)
    undo_b >> roll_forward           (when b rolls_forward)

The planner picks which compensations run (a branch). A compensation waits only for those the
table says it waits for: one that is stuck holds back those, and the cancelled record, and no other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import TriggerRule

from airflow_order_provider.saga.steps import Saga, takes_saga


def _make(saga: Saga, factory: Any, task_id: str, kwargs: Mapping[str, Any],
          overrides: Mapping[str, Mapping[str, Any]], **wiring: Any) -> Any:
    if takes_saga(factory):
        wiring["saga"] = saga
    return factory(task_id=task_id, **{**kwargs, **wiring, **(overrides.get(task_id) or {})})


def build_saga(saga: Saga, *, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """
    Create the saga's tasks in the DAG (or task group) being defined; return them by task id.

    :param saga: the saga's table.
    :param overrides: keyword arguments per task id that win over the table's (a policy, a pool,
        a connection id...).
    """
    overrides = dict(overrides or {})
    tasks: dict[str, Any] = {}

    def make(task_id: str, factory: Any, kwargs: Mapping[str, Any], **wiring: Any) -> Any:
        tasks[task_id] = _make(saga, factory, task_id, kwargs, overrides, **wiring)
        return tasks[task_id]

    previous = make(saga.start.task_id, saga.start.factory, saga.start.kwargs)
    gate = None
    for index, step in enumerate(saga.steps):
        # A step after a gated one runs whether the gated step ran or was skipped.
        wiring = {"trigger_rule": TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS} if gate is not None else {}
        if step.gate is not None:
            following = saga.steps[index + 1].task_id if index + 1 < len(saga.steps) else saga.complete.task_id
            new_gate = make(step.gate_task_id, step.gate, {}, step_task_id=step.task_id, next_task_id=following)
            previous >> new_gate
            previous = new_gate
        task = make(step.task_id, step.forward, step.kwargs, **wiring)
        previous >> task
        if gate is not None:
            gate >> task
        gate = tasks[step.gate_task_id] if step.gate_task_id else None
        previous = task

    # The saga completes once its last rollback step is done; best-effort steps after it may fail.
    last = saga.rollback_steps[-1].task_id
    after = [s.task_id for s in saga.steps[saga.step_ids.index(last) + 1:]]
    complete = make(saga.complete.task_id, saga.complete.factory, saga.complete.kwargs,
                    trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS if after else TriggerRule.ALL_SUCCESS)
    [tasks[last], *(tasks[t] for t in after)] >> complete

    plan = make(saga.plan.task_id, saga.plan.factory, saga.plan.kwargs, trigger_rule=TriggerRule.ONE_FAILED)
    [tasks[step.task_id] for step in saga.rollback_steps] >> plan
    # Each compensation waits for the planner and for the compensations the table says it waits for
    # (undo_after), and for nothing else: it runs once those are done or skipped (not needed), and
    # waits as long as one of them is still trying; one that failed for good holds it back.
    undos = []
    for task_id in saga.compensation_ids:  # latest step first, so that what it waits for exists
        step = next(s for s in saga.steps if s.compensation == task_id)
        task = make(task_id, step.compensate, {}, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        plan >> task
        for waited in saga.compensation_waits_for(task_id):
            tasks[waited] >> task
        undos.append(task)
    cancelled = make(saga.cancelled.task_id, saga.cancelled.factory, saga.cancelled.kwargs,
                     trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    [plan, *undos] >> cancelled
    if saga.roll_forward is not None:
        # Runs only when a compensation finds its step past the point of no return: that compensation
        # then skips the other undos and the cancelled record, and otherwise skips this task.
        forward = make(saga.roll_forward.task_id, saga.roll_forward.factory, saga.roll_forward.kwargs)
        [tasks[task_id] for task_id in saga.rolls_forward_ids] >> forward
    return tasks
