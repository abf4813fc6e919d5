"""Orders as a resource: start one (``POST /orders``), list them, get one with its whole story."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from airflow.api.common.trigger_dag import trigger_dag
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.exceptions import DagNotFound, DagRunAlreadyExists
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.types import DagRunTriggeredByType
from fastapi import APIRouter, Body, HTTPException, Query, Request, status
from pydantic import ValidationError
from sqlalchemy import and_, exists, func, select
from sqlalchemy.exc import IntegrityError

from airflow_order_provider import signals
from airflow_order_provider.api.auth import can_read, can_read_results, can_read_tries, can_trigger
from airflow_order_provider.api.health import HEALTH_PATH
from airflow_order_provider.api.page import UI_PATH
from airflow_order_provider.api.queries import (
    audit,
    find_run,
    get_run_or_404,
    last_update,
    load_xcoms,
    read_signal,
    state_name,
    task_states,
    tries,
)
from airflow_order_provider.api.responses import (
    conflict,
    history,
    iso,
    links,
    results,
    summary,
    utcnow,
    validation_error,
)
from airflow_order_provider.api.status import (
    CANCELLED_TASK,
    DAG_ID,
    FINAL_STATUSES,
    STATUSES,
    compensation_story,
    order_status,
)
from airflow_order_provider.deployment import waiting_on_missing_pools
from airflow_order_provider.models import Order, describe_error
from airflow_order_provider.operators.compensation import UNDO_KEY
from airflow_order_provider.order_conf import conf_of
from airflow_order_provider.saga.failure import FAILURE_KEY
from airflow_order_provider.version_compat.api_server import RUN_REFUSED

#: The statuses, as the list filter takes them (one definition: api/status.py).
OrderStatus = Literal[STATUSES]  # type: ignore[valid-type]

router = APIRouter()


@router.post("/", status_code=status.HTTP_201_CREATED, dependencies=[can_trigger], summary="Start an order")
def start_order(
    request: Request,
    session: SessionDep,
    user: GetUserDep,
    body: Annotated[dict[str, Any], Body(description="The order, exactly as the DAG's conf")],
) -> Any:
    """
    Start a run of ``order_processing`` whose run id is the order id and whose conf is the order.

    The order is validated first (422 naming every bad field; nothing is created). An order
    already started answers 409 with its run. The run is created by Airflow's ``trigger_dag``,
    after the checks ``POST /api/v2/dags/order_processing/dagRuns`` makes (the DAG exists and
    has no import errors; its params, allowed run types and the run id are checked by Airflow
    when the run is created): 404 or 400 as that endpoint answers.
    """
    try:
        order = Order.model_validate(body)  # the full validation: the order enters here
    except ValidationError as exc:
        return validation_error(
            [
                {
                    "loc": ["body", *error["loc"]],
                    "field": ".".join(str(p) for p in error["loc"]) or None,
                    "msg": describe_error(error),
                    "type": error["type"],
                }
                for error in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
        )
    if order.order_id in (UI_PATH, HEALTH_PATH):
        return validation_error(
            [{"loc": ["body", "order_id"], "field": "order_id", "type": "value_error",
              "msg": f"order_id: {order.order_id!r} is reserved by the order API (its Orders page and health)"}]
        )

    existing = find_run(session, order.order_id)
    if existing is not None:
        return already_started(session, order.order_id, existing)

    check_triggerable(session)
    try:
        run = trigger_dag(
            DAG_ID,
            run_id=order.order_id,
            conf=body,
            logical_date=None,
            triggered_by=DagRunTriggeredByType.UI if request.headers.get("referer") else DagRunTriggeredByType.REST_API,
            triggering_user_name=user.get_name(),
            session=session,
        )
        audit(session, "order_api.start", run, user, {"order_id": order.order_id, "method": "POST"})
        session.flush()
    except (DagRunAlreadyExists, IntegrityError):  # started at the same moment by another request
        session.rollback()
        existing = find_run(session, order.order_id)
        if existing is None:
            raise
        return already_started(session, order.order_id, existing)
    except DagNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except RUN_REFUSED as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from error
    return {
        "order_id": order.order_id,
        "run_id": run.run_id,
        "status": order_status(state_name(run.state), {}),
        "run_state": state_name(run.state),
        "links": links(order.order_id, run.run_id),
    }


def already_started(session: Any, order_id: str, run: DagRun) -> Any:
    states = task_states(session, [run.run_id])[run.run_id]
    return conflict(f"Order {order_id} was already started", run, states)


def check_triggerable(session: Any) -> None:
    """What Airflow's trigger endpoint checks before it creates a run: the DAG is there and parses."""
    dag = session.scalar(select(DagModel).where(DagModel.dag_id == DAG_ID))
    if dag is None or dag.is_stale:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Dag with dag_id: '{DAG_ID}' not found")
    if dag.has_import_errors:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"Dag with dag_id: '{DAG_ID}' has import errors and cannot be triggered")


@router.get("/", dependencies=[can_read], summary="List orders")
def list_orders(
    session: SessionDep,
    status_: Annotated[OrderStatus | None, Query(alias="status", description="Only orders in this status")] = None,
    since: Annotated[datetime | None, Query(description="Only orders created at or after (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Orders (runs of ``order_processing``), newest first, with their derived status."""
    query = select(DagRun).where(DagRun.dag_id == DAG_ID)
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
        query = query.where(DagRun.created_at >= since)
    cancelled = exists().where(
        and_(
            TaskInstance.dag_id == DagRun.dag_id,
            TaskInstance.run_id == DagRun.run_id,
            TaskInstance.task_id == CANCELLED_TASK,
            TaskInstance.state == "success",
        )
    )
    order_by = (DagRun.created_at.desc(), DagRun.id.desc())
    now = utcnow()

    if status_ is None or status_ in FINAL_STATUSES:
        # The status is decided by the run's state (and cancel_order's): filter and page in SQL.
        if status_ == "completed":
            query = query.where(DagRun.state == "success")
        elif status_ == "cancelled":
            query = query.where(DagRun.state == "failed", cancelled)
        elif status_ == "failed":
            query = query.where(DagRun.state == "failed", ~cancelled)
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        runs = list(session.scalars(query.order_by(*order_by).offset(offset).limit(limit)))
        states = task_states(session, [r.run_id for r in runs])
        return {"orders": [summary(r, states[r.run_id], now) for r in runs], "total_entries": total}

    # An order in flight: its status depends on its task instances. Only queued and running
    # runs can have it (as many as the deployment runs at once).
    runs = list(session.scalars(query.where(DagRun.state.in_(("queued", "running"))).order_by(*order_by)))
    states = task_states(session, [r.run_id for r in runs])
    matching = [r for r in runs if order_status(state_name(r.state), states[r.run_id]) == status_]
    page = matching[offset : offset + limit]
    return {"orders": [summary(r, states[r.run_id], now) for r in page], "total_entries": len(matching)}


@router.get("/{order_id}", dependencies=[can_read, can_read_tries, can_read_results], summary="Get an order")
def get_order(order_id: str, session: SessionDep) -> dict[str, Any]:
    """
    The order's status, current step, results (the steps' XComs), the history of every try of
    every step (TaskInstance and TaskInstanceHistory; ``error`` from the step's ``failure``
    XCom where Airflow still has it, see :func:`history`), its signals, and the order itself.
    """
    run = get_run_or_404(session, order_id)
    states = task_states(session, [run.run_id])[run.run_id]
    xcoms = load_xcoms(session, run, ("return_value", FAILURE_KEY, UNDO_KEY))
    failures = {task: value for (task, key), value in xcoms.items() if key == FAILURE_KEY}
    item = summary(run, states, utcnow())
    real_id = item["order_id"]
    return {
        "order_id": real_id,
        "run_id": run.run_id,
        "status": item["status"],
        "current_step": item["current_step"],
        # Why it cannot move on by itself, e.g. "process_payment waits for pool 'order_payment',
        # which does not exist" (empty when nothing is wrong with the deployment).
        "waiting_for": waiting_on_missing_pools(session, DAG_ID, run.run_id),
        "run_state": item["run_state"],
        "results": results(xcoms),
        "history": history(tries(session, run), failures),
        # which compensations are done, still trying (next try at), need a person; rolled forward
        **compensation_story(states, {task: v for (task, key), v in xcoms.items() if key == UNDO_KEY}),
        "cancel_request": read_signal(signals.cancel_key(real_id)),
        "shipping_address_change": read_signal(signals.address_key(real_id)),
        "order": conf_of(run),  # as it was submitted
        "created_at": item["created_at"],
        "updated_at": iso(last_update(session, run)),
        "start_date": iso(run.start_date),
        "end_date": iso(run.end_date),
        "task_states": states,
        "links": item["links"],
    }
