"""
The deadline reference of the business deadline: when the order was placed.

Airflow 3.3.2's built-in ``DeadlineReference.DAGRUN_QUEUED_AT`` breaks clearing a task of a run
whose deadline is still pending (``clearTaskInstances`` answers 500: it recalculates the deadline
from the stored interval, a dict, apache/airflow#70368). Clearing a failed compensation is how
an operator settles an order, so the order's deadline uses this reference instead: the time the
run was requested (``run_after``, the trigger time of a manual run), which a clear leaves alone,
as a business deadline should. It is registered through the provider's plugin
(:mod:`airflow_order_provider.plugins`), as Airflow requires of custom references.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk.definitions.deadline import BaseDeadlineReference


class OrderPlacedAt(BaseDeadlineReference):
    """The time the order's run was requested."""

    required_kwargs = {"dag_id", "run_id"}

    def _evaluate_with(self, *, session: Any, **kwargs: Any) -> datetime | None:
        from airflow.models import DagRun
        from sqlalchemy import select

        return session.scalar(
            select(DagRun.run_after).where(DagRun.dag_id == kwargs["dag_id"], DagRun.run_id == kwargs["run_id"])
        )
