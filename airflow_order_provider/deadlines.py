"""
The deadline reference of the business deadline: when the order was placed.

Airflow 3.3.2's built-in ``DeadlineReference.DAGRUN_QUEUED_AT`` breaks clearing a task of a run
whose deadline is still pending (``clearTaskInstances`` answers 500: it recalculates the deadline
from the stored interval, a dict, apache/airflow#70368). Clearing a failed compensation is how
an operator settles an order, so the order's deadline uses this reference instead: the time the
run was requested (``run_after``, the trigger time of a manual run), which a clear leaves alone,
as a business deadline should. It is registered through the provider's plugin
(:mod:`airflow_order_provider.plugins`), as Airflow requires of custom references.

Airflow 3.1 takes no custom deadline reference (plugins register ``deadline_references`` from 3.2,
and 3.1's ``airflow.sdk.definitions.deadline`` has no ``BaseDeadlineReference``): there
:func:`airflow_order_provider.version_compat.order_deadline_reference` counts the deadline from
the run's queued time instead, and this module defines no reference.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from airflow_order_provider.version_compat import HAS_CUSTOM_DEADLINE_REFERENCES
from airflow_order_provider.version_compat.dag_test import (
    install_dag_test_deadline_fix,
    install_dag_test_fixes,
)

if HAS_CUSTOM_DEADLINE_REFERENCES:
    from airflow.sdk.definitions.deadline import BaseDeadlineReference

    class OrderPlacedAt(BaseDeadlineReference):
        """The time the order's run was requested."""

        required_kwargs = {"dag_id", "run_id"}

        def _evaluate_with(self, *, session: Any, **kwargs: Any) -> datetime | None:
            from airflow.models import DagRun
            from sqlalchemy import select

            return session.scalar(
                select(DagRun.run_after).where(
                    DagRun.dag_id == kwargs["dag_id"], DagRun.run_id == kwargs["run_id"]
                )
            )

    #: The references the provider's plugin registers.
    DEADLINE_REFERENCES: list[type] = [OrderPlacedAt]
else:
    DEADLINE_REFERENCES = []

__all__ = ["DEADLINE_REFERENCES", "install_dag_test_deadline_fix", "install_dag_test_fixes_where_core_is_loaded"] + (
    ["OrderPlacedAt"] if HAS_CUSTOM_DEADLINE_REFERENCES else []
)


# The workarounds of ``dag.test()``'s upstream bugs (the deadline lookup of 3.2+; in 3.1 and 3.2 the
# in-process execution API's services and the failure callbacks' exception) are in :mod:`airflow_order_provider.version_compat`
# (:func:`~airflow_order_provider.version_compat.dag_test.install_dag_test_fixes`). They are installed when
# this module is imported, which the DAG file (through its deadline alert) and the provider's plugin
# both do; only where Airflow's core models are loaded already (``airflow dags test``,
# ``dag.test()``, the scheduler's processes): a task's worker parses the DAG file without them, and
# importing them there would cost every task about half a second.
def install_dag_test_fixes_where_core_is_loaded() -> None:
    """
    The workarounds, in a process that has Airflow's core models loaded; called at import and again
    each time the DAG builds its deadline alert (a process may import this module before it loads
    the core models, e.g. a test session that loaded the plugin first). Idempotent.
    """
    if "airflow.models.dagrun" in sys.modules:
        install_dag_test_fixes()


install_dag_test_fixes_where_core_is_loaded()
