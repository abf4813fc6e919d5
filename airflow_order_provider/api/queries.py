"""
What the order API reads from (and writes to) Airflow's metadata database, through Airflow's ORM
and the API server's session: an order's run, its task states and XComs, its tries, its signals.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from airflow.models import Variable
from airflow.models.dagrun import DagRun
from airflow.models.log import Log
from airflow.models.taskinstance import TaskInstance
from airflow.models.taskinstancehistory import TaskInstanceHistory
from airflow.models.xcom import XComModel
from fastapi import HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from airflow_order_provider.api.status import DAG_ID

#: Columns of a try, as :func:`tries` returns them.
TRY_COLUMNS = ("task_id", "try_number", "state", "start_date", "end_date", "duration", "retry_reason")


def state_name(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def find_run(session: Session, order_id: str, *, lock: bool = False) -> DagRun | None:
    """
    The order's run: the ``order_processing`` run whose run id is the order id (runs started
    through this API), else the newest run whose conf has that ``order_id`` (runs started otherwise).
    With ``lock``, the run's row is locked until the transaction ends (signals are serialized).
    """
    query = select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == order_id)
    run = session.scalar(query)
    if run is None:
        query = (
            select(DagRun)
            .where(DagRun.dag_id == DAG_ID, DagRun.conf["order_id"].as_string() == order_id)
            .order_by(DagRun.id.desc())
            .limit(1)
        )
        run = session.scalar(query)
    if run is not None and lock:
        run = session.scalar(
            select(DagRun).where(DagRun.id == run.id).with_for_update().execution_options(populate_existing=True)
        )
    return run


def get_run_or_404(session: Session, order_id: str, *, lock: bool = False) -> DagRun:
    run = find_run(session, order_id, lock=lock)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Order {order_id!r} not found")
    return run


def task_states(session: Session, run_ids: list[str]) -> dict[str, dict[str, str | None]]:
    """``{run_id: {task_id: state}}`` of the given runs of ``order_processing``."""
    found: dict[str, dict[str, str | None]] = {run_id: {} for run_id in run_ids}
    if not run_ids:
        return found
    rows = session.execute(
        select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.dag_id == DAG_ID, TaskInstance.run_id.in_(run_ids), TaskInstance.map_index == -1
        )
    )
    for run_id, task_id, state in rows:
        found[run_id][task_id] = state_name(state)
    return found


def lock_task_instance(session: Session, run: DagRun, task_id: str) -> TaskInstance | None:
    """
    Lock a task instance's row until the transaction ends. A task's start (the execution API's
    move to ``running``) updates that row, so it waits for the lock: what the caller decides and
    writes under it is seen by the task, or the caller sees the task started.
    """
    return session.scalar(
        select(TaskInstance)
        .where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id, TaskInstance.task_id == task_id,
               TaskInstance.map_index == -1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def has_tried(session: Session, run: DagRun, task_id: str) -> bool:
    """Whether a try of the task has started (or finished) in this run."""
    earlier = session.scalar(
        select(func.count()).select_from(TaskInstanceHistory).where(
            TaskInstanceHistory.dag_id == DAG_ID, TaskInstanceHistory.run_id == run.run_id,
            TaskInstanceHistory.task_id == task_id,
        )
    )
    return bool(earlier)


def read_signal(key: str) -> dict[str, Any] | None:
    """A signal Variable (JSON object), read the way the steps read it (through the secrets backends)."""
    try:
        value = Variable.get(key, default_var=None, deserialize_json=True)
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def audit(session: Session, event: str, run: DagRun, user: Any, extra: dict[str, Any]) -> None:
    """An entry in Airflow's audit log (Browse > Audit Log), like the REST API's own."""
    name = user.get_name() if user else "anonymous"
    session.add(
        Log(event=event, owner=name, owner_display_name=name, extra=json.dumps(extra, default=str),
            dag_id=DAG_ID, run_id=run.run_id)
    )


def load_xcoms(session: Session, run: DagRun, keys: tuple[str, ...]) -> dict[tuple[str, str], Any]:
    rows = session.scalars(
        select(XComModel).where(
            XComModel.dag_run_id == run.id, XComModel.map_index == -1, XComModel.key.in_(keys)
        )
    )
    return {(row.task_id, row.key): XComModel.deserialize_value(row) for row in rows}


def tries(session: Session, run: DagRun) -> list[tuple[bool, tuple[Any, ...]]]:
    """Every try of the run's tasks: ``(is_current, row)`` with :data:`TRY_COLUMNS`."""
    rows = []
    for model, current in ((TaskInstanceHistory, False), (TaskInstance, True)):
        found = session.execute(
            select(*(getattr(model, c) for c in TRY_COLUMNS)).where(
                model.dag_id == DAG_ID, model.run_id == run.run_id, model.map_index == -1
            )
        )
        rows.extend((current, tuple(row)) for row in found)
    return rows


def last_update(session: Session, run: DagRun) -> datetime | None:
    latest = session.scalar(
        select(func.max(TaskInstance.updated_at)).where(
            TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id
        )
    )
    candidates = [d for d in (run.updated_at, latest, run.end_date, run.start_date, run.created_at) if d]
    return max(candidates) if candidates else None
