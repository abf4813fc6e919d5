"""
Who may do what with orders: Airflow's own ``requires_access_dag`` on the ``order_processing`` DAG.

The API server does not protect plugin apps by itself: every data endpoint depends on one of these.
GET endpoints need read access to the DAG's runs (an order's details, which show its tries and
results, also to its task instances and XComs), ``POST /orders`` the right to trigger it
(``POST``), cancel and address changes the right to edit its runs (``PUT``).
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends

from airflow_order_provider.api.status import DAG_ID

can_read = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN, param_dag_id=DAG_ID))
# An order's details also show its steps' tries and results: the task instances and XComs.
can_read_tries = Depends(
    requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE, param_dag_id=DAG_ID)
)
can_read_results = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM, param_dag_id=DAG_ID))
can_trigger = Depends(requires_access_dag(method="POST", access_entity=DagAccessEntity.RUN, param_dag_id=DAG_ID))
can_edit = Depends(requires_access_dag(method="PUT", access_entity=DagAccessEntity.RUN, param_dag_id=DAG_ID))
