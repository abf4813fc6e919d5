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

import sys
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


# -- Airflow 3.3.2: ``dag.test()`` / ``airflow dags test`` of a DAG with a DeadlineAlert -------------
#
# When a run succeeds, ``DagRun.update_state`` looks each of the DAG's alerts up by id
# (``DeadlineAlert.get_by_id(alert_id) for alert_id in dag.deadline``) to prune the run's pending
# deadlines. A deployed DAG's ``deadline`` holds the ids of its ``deadline_alert`` rows (the DAG
# processor writes them), but ``dag.test()`` runs the DAG it serialized and deserialized in memory,
# whose ``deadline`` still holds the serialized alerts (dicts): the id lookup binds a dict as a UUID
# and the successful test ends in ``AttributeError: 'dict' object has no attribute 'hex'``
# (airflow/models/dagrun.py, ``update_state``; airflow/models/deadline_alert.py, ``get_by_id``).
#
# The fix below answers such a lookup with the alert the dict describes (a transient row, never
# added to the session): ``update_state`` only asks it for its ``reference_class``, then prunes the
# run's deadlines by run id as in a deployment. Ids (str or UUID) are looked up as before, so a
# deployed Airflow is unaffected. It is installed when this module is imported, which the DAG
# file (through ``OrderPlacedAt``) and the provider's plugin both do.


def _alert_from_serialized(serialized: dict[str, Any]) -> Any:
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel

    data = serialized.get("__var", serialized)
    return DeadlineAlertModel(
        name=data.get("name"),
        reference=data.get("reference") or {},
        interval=data.get("interval") or {},
        callback_def=data.get("callback") or data.get("callback_def") or {},
    )


def install_dag_test_deadline_fix() -> bool:
    """Let ``DeadlineAlert.get_by_id`` take the serialized alert ``dag.test()`` passes; True if installed now."""
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel

    current = DeadlineAlertModel.__dict__["get_by_id"].__func__
    if getattr(current, "_order_provider_fix", False):
        return False

    def get_by_id(cls, deadline_alert_id, *args: Any, **kwargs: Any):
        if isinstance(deadline_alert_id, dict):
            return _alert_from_serialized(deadline_alert_id)
        return current(cls, deadline_alert_id, *args, **kwargs)

    get_by_id._order_provider_fix = True  # type: ignore[attr-defined]
    get_by_id.__doc__ = current.__doc__
    DeadlineAlertModel.get_by_id = classmethod(get_by_id)  # type: ignore[method-assign]
    return True


# Only where Airflow's core models are loaded already (``airflow dags test``, ``dag.test()``, the
# scheduler's processes): a task's worker parses this DAG file without them, and importing them
# there would cost every task about half a second.
if "airflow.models.dagrun" in sys.modules:
    install_dag_test_deadline_fix()
