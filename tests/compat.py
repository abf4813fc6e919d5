"""
What the tests need to know of the Airflow release they run on (``make compat`` runs them on 3.1,
3.2 and 3.3): skip markers naming the missing feature and the release that brings it (pytest
reports every skip with its reason: ``-ra``), and the few test helpers whose import differs.
The provider's own version gates are :mod:`airflow_order_provider.version_compat`; these read them.
"""

from __future__ import annotations

import pytest

from airflow_order_provider.version_compat import (
    AIRFLOW_V_3_2_PLUS,
    AIRFLOW_V_3_3_PLUS,
    AIRFLOW_VERSION,
    HAS_CUSTOM_DEADLINE_REFERENCES,
    HAS_PROVIDER_CLI,
    HAS_RETRY_POLICY,
)

needs_retry_policy = pytest.mark.skipif(
    not HAS_RETRY_POLICY, reason=f"retry policies (retry_policy=) are Airflow 3.3+; this is {AIRFLOW_VERSION}"
)
needs_custom_deadline_references = pytest.mark.skipif(
    not HAS_CUSTOM_DEADLINE_REFERENCES,
    reason=f"custom deadline references (the order's placed-at time) are Airflow 3.2+; this is {AIRFLOW_VERSION}",
)
needs_provider_cli = pytest.mark.skipif(
    not HAS_PROVIDER_CLI, reason=f"provider CLI commands (airflow orders) are Airflow 3.2+; this is {AIRFLOW_VERSION}"
)
#: ``airflow dags test`` of the order DAG with its ship deadline: Airflow 3.1's dag.test() creates its
#: run without ``queued_at`` and then evaluates the deadline (``DAGRUN_QUEUED_AT`` on 3.1) against it.
needs_dags_test_with_deadline = pytest.mark.skipif(
    not AIRFLOW_V_3_2_PLUS,
    reason=(
        "Airflow 3.1's `airflow dags test` creates its run without queued_at, then evaluates the ship deadline"
        " (DAGRUN_QUEUED_AT on 3.1) against it: 'No matching record found' (upstream); this is"
        f" {AIRFLOW_VERSION}"
    ),
)
needs_3_3 = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason=f"needs Airflow 3.3+; this is {AIRFLOW_VERSION}")


if AIRFLOW_V_3_2_PLUS:
    from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferred
else:
    from airflow.exceptions import AirflowSensorTimeout, TaskDeferred

__all__ = [
    "AirflowSensorTimeout",
    "TaskDeferred",
    "dag_bag_class",
    "needs_3_3",
    "needs_custom_deadline_references",
    "needs_dags_test_with_deadline",
    "needs_provider_cli",
    "needs_retry_policy",
]


def dag_bag_class():
    """Airflow's DagBag: ``airflow.dag_processing.dagbag`` from 3.2, ``airflow.models.dagbag`` in 3.1."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag
    return DagBag
