"""
The order's clocks, in one place: when it was placed, its workflow timeout and the checkpoint a
step passes, and its ship deadline (which the steps and the priority strategy both read).

The generic parts (a checkpoint, a workflow clock that leaves waits out) are the saga core's
(:mod:`airflow_order_provider.saga.checkpoint`); this module gives them the order's times
(:func:`~airflow_order_provider.policies.order_times`) and its cancel signal
(:mod:`airflow_order_provider.signals`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_order_provider.exceptions import OrderCancelledError, WorkflowTimeoutError
from airflow_order_provider.saga.checkpoint import Checkpoint, WorkflowClock, waited_seconds


def placed_at(dag_run: Any) -> datetime | None:
    """When the order was placed: its run's ``run_after`` (a clear leaves it alone), else when it was queued."""
    if dag_run is None:
        return None
    return getattr(dag_run, "run_after", None) or getattr(dag_run, "queued_at", None) or getattr(
        dag_run, "start_date", None)


def ship_deadline_left(placed: datetime, now: datetime | None = None) -> timedelta:
    """How long is left, at ``now``, before the ship deadline of an order placed at ``placed``."""
    from airflow_order_provider.policies import order_times

    if placed.tzinfo is None:
        placed = placed.replace(tzinfo=timezone.utc)
    return placed + order_times().scaled("ship_deadline") - (now or datetime.now(timezone.utc))


def is_expedited(placed: datetime | None, now: datetime | None = None) -> bool:
    """Whether less than ``expedite_within`` is left (at ``now``) before the ship deadline of an order placed then."""
    if placed is None:  # outside a DAG run: no order clock
        return False
    from airflow_order_provider.policies import order_times

    return ship_deadline_left(placed, now) < order_times().scaled("expedite_within")


def workflow_limit(order_timeout: int | float | str | None) -> timedelta:
    """The order's workflow timeout: the deployment's, or the order's own when shorter; scaled."""
    from airflow_order_provider.policies import order_times, time_scale

    limit = order_times().workflow_timeout
    if order_timeout not in (None, ""):
        limit = min(limit, timedelta(seconds=float(order_timeout)))
    return limit * time_scale()


def order_checkpoint(order_id: str, step: str, *, clock: WorkflowClock | None = None) -> Checkpoint:
    """The checkpoint of ``step`` of an order: its cancel signal and, given one, its workflow clock."""
    from airflow_order_provider.signals import cancel_request

    return Checkpoint(
        saga_id=order_id, step=step, read_cancel=cancel_request, clock=clock,
        cancelled_error=OrderCancelledError, timeout_error=WorkflowTimeoutError, label=f"order {order_id}",
    )


def workflow_clock(dag_run: Any, order_timeout: int | float | str | None, result_of: Callable[[str], Any],
                   waits: Iterable[str]) -> WorkflowClock:
    """
    The order's workflow clock in ``dag_run``: its limit, since the run started, less the waits of the
    steps ``waits`` (their results' ``waited_seconds``, read with ``result_of``).
    """
    return WorkflowClock(
        limit=workflow_limit(order_timeout),
        started=dag_run.start_date or dag_run.run_after,
        waited=waited_seconds(result_of, waits),
    )
