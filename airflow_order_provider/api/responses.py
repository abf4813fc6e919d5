"""
How the order API shapes its answers: an order's summary, results, history, links and errors.

Pure functions over what :mod:`airflow_order_provider.api.queries` read; the task ids and result
fields come from the order saga's table.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from airflow.api_fastapi.app import API_ROOT_PATH
from airflow.models.dagrun import DagRun
from fastapi import status
from fastapi.responses import JSONResponse

from airflow_order_provider import order_conf
from airflow_order_provider.api.queries import state_name
from airflow_order_provider.api.status import (
    COMPENSATION_TASKS,
    DAG_ID,
    FORWARD_TASKS,
    current_step,
    order_status,
)
from airflow_order_provider.order_saga import ORDER_SAGA

#: Steps whose result (XCom ``return_value``) makes the order's ``results``.
RESULT_TASKS = (*ORDER_SAGA.step_ids, ORDER_SAGA.complete.task_id, ORDER_SAGA.cancelled.task_id,
                *((ORDER_SAGA.roll_forward.task_id,) if ORDER_SAGA.roll_forward else ()))
#: Fields of the steps' results lifted to the top of ``results``, per step.
RESULT_FIELDS = {step.task_id: step.result_fields for step in ORDER_SAGA.steps if step.result_fields}
#: Task-instance states of a try that has not run (yet): left out of the history.
NOT_RUN_STATES = frozenset({None, "scheduled", "queued", "up_for_retry", "upstream_failed", "removed"})


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def ui_path(path: str) -> str:
    """A path of Airflow's UI or API, under the deployment's base path."""
    return f"{API_ROOT_PATH.rstrip('/')}/{path.lstrip('/')}"


def links(order_id: str, run_id: str) -> dict[str, str]:
    q_order, q_run = quote(order_id, safe=""), quote(run_id, safe="")
    return {
        "self": ui_path(f"orders/{q_order}"),
        "run": ui_path(f"dags/{DAG_ID}/runs/{q_run}"),
        "api": ui_path(f"api/v2/dags/{DAG_ID}/dagRuns/{q_run}"),
        "cancel": ui_path(f"orders/{q_order}/cancel"),
        "shipping_address": ui_path(f"orders/{q_order}/shipping-address"),
    }


def order_id_of(run: DagRun) -> str:
    """The order's id (:func:`airflow_order_provider.order_conf.order_id_of`), else the run's."""
    return order_conf.order_id_of(run) or run.run_id


def conflict(message: str, run: DagRun, states: dict[str, str | None], **extra: Any) -> JSONResponse:
    order_id = order_id_of(run)
    return JSONResponse(
        status_code=status.HTTP_409_CONFLICT,
        content={
            "detail": message,
            "order_id": order_id,
            "run_id": run.run_id,
            "status": order_status(state_name(run.state), states),
            "links": links(order_id, run.run_id),
            **extra,
        },
    )


def summary(run: DagRun, states: dict[str, str | None], now: datetime) -> dict[str, Any]:
    order = order_conf.order_of(run)
    run_state = state_name(run.state)
    created = run.created_at or run.run_after
    order_id = order_id_of(run)
    return {
        "order_id": order_id,
        "run_id": run.run_id,
        "status": order_status(run_state, states),
        "current_step": current_step(run_state, states),
        "run_state": run_state,
        "total_amount": order.total_amount if order else None,
        "currency": order.currency if order else None,
        "customer_id": order.customer_id if order else None,
        "created_at": iso(created),
        "age_seconds": round((now - created).total_seconds(), 3) if created else None,
        "links": links(order_id, run.run_id),
    }


def results(xcoms: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """The order's results: the main ids at the top, every step's full result under ``steps``."""
    steps = {task: xcoms[(task, "return_value")] for task in RESULT_TASKS if (task, "return_value") in xcoms}
    out: dict[str, Any] = {
        "payment_id": None, "reservation_id": None, "shipment_id": None, "tracking_number": None,
    }
    for task, fields in RESULT_FIELDS.items():
        value = steps.get(task)
        if isinstance(value, dict):
            for field in fields:
                if value.get(field) is not None or field not in out:
                    out[field] = value.get(field)
    out["confirmation_message_id"] = out.pop("message_id", None)
    out["completion"] = steps.get(ORDER_SAGA.complete.task_id) or (
        steps.get(ORDER_SAGA.roll_forward.task_id) if ORDER_SAGA.roll_forward else None)
    out["cancellation"] = steps.get(ORDER_SAGA.cancelled.task_id)
    out["steps"] = steps
    return out


def history(tries: list[tuple[bool, tuple[Any, ...]]], failures: dict[str, Any]) -> list[dict[str, Any]]:
    """
    Every try of every task of the run that ran, oldest first: the previous tries from
    TaskInstanceHistory, the current one from TaskInstance (a try waiting to be retried is already
    in the history table, as in Airflow's ``/tries`` endpoint).

    ``error`` is the step's ``failure`` XCom (what its operator recorded about a failed call) on the
    try that recorded it. Airflow keeps one XCom per task and clears a task's XComs when a new
    try starts, so only the latest failed try's record survives, and none once a later try ran;
    such tries fall back to the reason Airflow's retry policy stored (``retry_reason``), else null.
    """
    entries = []
    for current, row in tries:
        task_id, try_number, state, start, end, duration, retry_reason = row
        state = state_name(state)
        if current and (state in NOT_RUN_STATES or not try_number):
            continue  # not tried (yet), or skipped without running
        if duration is None and start is not None and end is not None:
            duration = (end - start).total_seconds()
        failure = failures.get(task_id)
        if isinstance(failure, dict) and failure.get("try_number") == try_number:
            error: Any = failure
        elif retry_reason and state in ("failed", "up_for_retry"):
            error = {"message": retry_reason, "source": "retry_reason"}
        else:
            error = None
        entries.append(
            {
                "step": task_id,
                "try_number": try_number,
                "state": state,
                "start": iso(start),
                "end": iso(end),
                "duration": round(duration, 3) if duration is not None else None,
                "error": error,
            }
        )
    order = {task: i for i, task in enumerate(FORWARD_TASKS + COMPENSATION_TASKS)}
    far_future = "9999"
    entries.sort(key=lambda e: (e["start"] or far_future, order.get(e["step"], 99), e["try_number"]))
    return entries


def validation_error(detail: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_ENTITY, content={"detail": detail})
