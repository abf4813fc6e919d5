"""
The order API: start an order, follow it, cancel it, change where it ships; and the Orders page.

Mounted by the provider's plugin on Airflow's API server under ``/orders`` (see
:mod:`airflow_order_provider.plugins`). Everything is read from and written to Airflow's metadata
database through Airflow's own ORM models and session, inside the API server: an order is the
``order_processing`` DAG run whose run id is the order id, its status is derived from the run's
and its task instances' states (:mod:`airflow_order_provider.api.status`), its results are the
steps' XComs, and its signals (cancel, new address) are Airflow Variables
(:mod:`airflow_order_provider.signals`). There is no second store.

Authentication and authorization are Airflow's: every data endpoint depends on Airflow's
``requires_access_dag`` for the ``order_processing`` DAG's runs, which authenticates the caller
with Airflow's ``get_user`` (a bearer JWT from ``POST /auth/token``, or the UI's ``_token``
cookie) and asks the configured auth manager. GET endpoints need read access to the DAG's runs
(an order's details, which show its tries and results, also to its task instances and XComs),
``POST /orders`` the right to trigger it (``POST``), cancel and address changes the right to edit
its runs (``PUT``). The API server does not protect plugin apps by itself: only the Orders page's
HTML, JavaScript and CSS (which hold no data) are served without authentication.

Endpoints (public paths):

* ``POST /orders``: start an order (the DAG's conf), run id = order id; 201, 409 if started, 422.
* ``GET /orders``: orders newest first, ``status``, ``since``, ``limit`` (<= 500), ``offset``.
* ``GET /orders/{order_id}``: status, current step, results, history of every try, signals.
* ``POST /orders/{order_id}/cancel``: ``{"reason"}``; 202 (a repeat: the first), 409 when too late.
* ``POST /orders/{order_id}/shipping-address``: a new address while shipping has not started.
* ``GET /orders/ui``: the Orders page (``orders/ui`` is therefore not a usable order id here).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from airflow.api_fastapi.app import API_ROOT_PATH
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.dagbag import DagBagDep, create_dag_bag
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.models import Variable
from airflow.models.dagrun import DagRun
from airflow.models.log import Log
from airflow.models.taskinstance import TaskInstance
from airflow.models.taskinstancehistory import TaskInstanceHistory
from airflow.models.xcom import XComModel
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from airflow_order_provider import signals
from airflow_order_provider.api.status import (
    COMPENSATION_TASKS,
    DAG_ID,
    FINAL_STATUSES,
    FORWARD_TASKS,
    STATUSES,
    current_step,
    order_status,
)
from airflow_order_provider.models import Order, ShippingAddress, _describe

STATIC_DIR = Path(__file__).parent / "static"
UI_PATH = "ui"

#: Steps whose result (XCom ``return_value``) makes the order's ``results``.
RESULT_TASKS = (
    "process_payment",
    "reserve_inventory",
    "schedule_shipment",
    "wait_for_dispatch",
    "send_confirmation",
    "complete_order",
    "cancel_order",
)
#: Fields of the steps' results lifted to the top of ``results``, per step.
RESULT_FIELDS = {
    "process_payment": ("payment_id", "transaction_ref"),
    "reserve_inventory": ("reservation_id", "warehouse_id"),
    "schedule_shipment": ("shipment_id", "tracking_number", "carrier", "estimated_delivery"),
    "wait_for_dispatch": ("dispatched_at",),
}
#: Task-instance states of a try that has not run (yet): left out of the history.
NOT_RUN_STATES = frozenset({None, "scheduled", "queued", "up_for_retry", "upstream_failed", "removed"})
#: States of ``schedule_shipment`` in which the shipping address can still change.
ADDRESS_OPEN_STATES = frozenset({None, "scheduled", "queued"})

OrderStatus = Literal[
    "pending", "processing_payment", "awaiting_approval", "reserving_inventory", "scheduling_shipment",
    "awaiting_dispatch", "sending_confirmation", "completed", "compensating", "cancelled", "failed",
]
assert set(OrderStatus.__args__) == set(STATUSES)  # type: ignore[attr-defined]

# -- authorization: Airflow's own dependency, on the order_processing DAG's runs ----------------------

can_read = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN, param_dag_id=DAG_ID))
# An order's details also show its steps' tries and results: the task instances and XComs.
can_read_tries = Depends(
    requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE, param_dag_id=DAG_ID)
)
can_read_results = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM, param_dag_id=DAG_ID))
can_trigger = Depends(requires_access_dag(method="POST", access_entity=DagAccessEntity.RUN, param_dag_id=DAG_ID))
can_edit = Depends(requires_access_dag(method="PUT", access_entity=DagAccessEntity.RUN, param_dag_id=DAG_ID))


# -- bodies ---------------------------------------------------------------------------------------------


class CancelBody(BaseModel):
    """Why the order is cancelled."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Annotated[str, Field(min_length=1, max_length=500)]


# -- helpers --------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _state(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


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


def _conf(run: DagRun) -> dict[str, Any]:
    return run.conf if isinstance(run.conf, dict) else {}


def order_id_of(run: DagRun) -> str:
    value = _conf(run).get("order_id")
    return value if isinstance(value, str) and value else run.run_id


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
        found[run_id][task_id] = _state(state)
    return found


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


def conflict(message: str, run: DagRun, states: dict[str, str | None], **extra: Any) -> JSONResponse:
    order_id = order_id_of(run)
    return JSONResponse(
        status_code=status.HTTP_409_CONFLICT,
        content={
            "detail": message,
            "order_id": order_id,
            "run_id": run.run_id,
            "status": order_status(_state(run.state), states),
            "links": links(order_id, run.run_id),
            **extra,
        },
    )


def summary(run: DagRun, states: dict[str, str | None], now: datetime) -> dict[str, Any]:
    conf = _conf(run)
    run_state = _state(run.state)
    created = run.created_at or run.run_after
    order_id = order_id_of(run)
    return {
        "order_id": order_id,
        "run_id": run.run_id,
        "status": order_status(run_state, states),
        "current_step": current_step(run_state, states),
        "run_state": run_state,
        "total_amount": conf.get("total_amount"),
        "currency": conf.get("currency"),
        "customer_id": conf.get("customer_id"),
        "created_at": _iso(created),
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
    confirmation = steps.get("send_confirmation")
    out["confirmation_message_id"] = confirmation.get("message_id") if isinstance(confirmation, dict) else None
    out["completion"] = steps.get("complete_order")
    out["cancellation"] = steps.get("cancel_order")
    out["steps"] = steps
    return out


def load_xcoms(session: Session, run: DagRun, keys: tuple[str, ...]) -> dict[tuple[str, str], Any]:
    rows = session.scalars(
        select(XComModel).where(
            XComModel.dag_run_id == run.id, XComModel.map_index == -1, XComModel.key.in_(keys)
        )
    )
    return {(row.task_id, row.key): XComModel.deserialize_value(row) for row in rows}


def history(session: Session, run: DagRun, failures: dict[str, Any]) -> list[dict[str, Any]]:
    """
    Every try of every task of the run that ran, oldest first: the previous tries from
    TaskInstanceHistory, the current one from TaskInstance (a try waiting to be retried is already
    in the history table, as in Airflow's ``/tries`` endpoint).

    ``error`` is the step's ``failure`` XCom (what its operator recorded about a failed call) on the
    try that recorded it. Airflow keeps one XCom per task and clears a task's XComs when a new
    try starts, so only the latest failed try's record survives, and none once a later try ran;
    such tries fall back to the reason Airflow's retry policy stored (``retry_reason``), else null.
    """
    columns = ("task_id", "try_number", "state", "start_date", "end_date", "duration", "retry_reason")
    entries = []
    for model, current in ((TaskInstanceHistory, False), (TaskInstance, True)):
        rows = session.execute(
            select(*(getattr(model, c) for c in columns)).where(
                model.dag_id == DAG_ID, model.run_id == run.run_id, model.map_index == -1
            )
        )
        for task_id, try_number, state, start, end, duration, retry_reason in rows:
            state = _state(state)
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
                    "start": _iso(start),
                    "end": _iso(end),
                    "duration": round(duration, 3) if duration is not None else None,
                    "error": error,
                }
            )
    order = {task: i for i, task in enumerate(FORWARD_TASKS + COMPENSATION_TASKS)}
    far_future = "9999"
    entries.sort(key=lambda e: (e["start"] or far_future, order.get(e["step"], 99), e["try_number"]))
    return entries


def last_update(session: Session, run: DagRun) -> datetime | None:
    latest = session.scalar(
        select(func.max(TaskInstance.updated_at)).where(
            TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id
        )
    )
    candidates = [d for d in (run.updated_at, latest, run.end_date, run.start_date, run.created_at) if d]
    return max(candidates) if candidates else None


def validation_error(detail: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_ENTITY, content={"detail": detail})


# -- the app --------------------------------------------------------------------------------------------


def create_app() -> FastAPI:
    app = FastAPI(
        title="Order API",
        description=__doc__,
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    # The DAG bag the public API's trigger endpoint reads the DAG from (serialized, from the DB).
    app.state.dag_bag = create_dag_bag()

    # -- the Orders page (no data: everything comes from the authenticated endpoints below) ----------

    def static(name: str, media_type: str) -> FileResponse:
        return FileResponse(STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @app.get(f"/{UI_PATH}", include_in_schema=False)
    def orders_page() -> FileResponse:
        return static("orders.html", "text/html; charset=utf-8")

    @app.get(f"/{UI_PATH}/orders.js", include_in_schema=False)
    def orders_js() -> FileResponse:
        return static("orders.js", "text/javascript; charset=utf-8")

    @app.get(f"/{UI_PATH}/orders.css", include_in_schema=False)
    def orders_css() -> FileResponse:
        return static("orders.css", "text/css; charset=utf-8")

    # -- start an order ----------------------------------------------------------------------------

    @app.post("/", status_code=status.HTTP_201_CREATED, dependencies=[can_trigger], summary="Start an order")
    def start_order(
        request: Request,
        session: SessionDep,
        user: GetUserDep,
        dag_bag: DagBagDep,
        body: Annotated[dict[str, Any], Body(description="The order, exactly as the DAG's conf")],
    ) -> Any:
        """
        Start a run of ``order_processing`` whose run id is the order id and whose conf is the order.

        The order is validated first (422 naming every bad field; nothing is created). An order
        already started answers 409 with its run. The run is created by Airflow's own trigger
        endpoint code (``trigger_dag_run``), so the DAG's params, import errors and allowed run
        types are checked as for ``POST /api/v2/dags/order_processing/dagRuns``.
        """
        from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
        from airflow.api_fastapi.core_api.routes.public.dag_run import trigger_dag_run

        try:
            order = Order.model_validate(body)
        except ValidationError as exc:
            return validation_error(
                [
                    {
                        "loc": ["body", *error["loc"]],
                        "field": ".".join(str(p) for p in error["loc"]) or None,
                        "msg": _describe(error),
                        "type": error["type"],
                    }
                    for error in exc.errors(include_url=False, include_context=False, include_input=False)
                ]
            )
        if order.order_id == UI_PATH:
            return validation_error(
                [{"loc": ["body", "order_id"], "field": "order_id", "type": "value_error",
                  "msg": f"order_id: {UI_PATH!r} is reserved by the order API (its Orders page)"}]
            )

        existing = find_run(session, order.order_id)
        if existing is not None:
            states = task_states(session, [existing.run_id])[existing.run_id]
            return conflict(f"Order {order.order_id} was already started", existing, states)

        try:
            run = trigger_dag_run(
                dag_id=DAG_ID,
                body=TriggerDAGRunPostBody(dag_run_id=order.order_id, logical_date=None, conf=body),
                dag_bag=dag_bag,
                user=user,
                session=session,
                request=request,
            )
            audit(session, "order_api.start", run, user, {"order_id": order.order_id, "method": "POST"})
            session.flush()
        except IntegrityError:  # started at the same moment by another request
            session.rollback()
            existing = find_run(session, order.order_id)
            if existing is None:
                raise
            states = task_states(session, [existing.run_id])[existing.run_id]
            return conflict(f"Order {order.order_id} was already started", existing, states)
        return {
            "order_id": order.order_id,
            "run_id": run.run_id,
            "status": order_status(_state(run.state), {}),
            "run_state": _state(run.state),
            "links": links(order.order_id, run.run_id),
        }

    # -- list orders -------------------------------------------------------------------------------

    @app.get("/", dependencies=[can_read], summary="List orders")
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
                TaskInstance.task_id == "cancel_order",
                TaskInstance.state == "success",
            )
        )
        order_by = (DagRun.created_at.desc(), DagRun.id.desc())
        now = _now()

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
        matching = [r for r in runs if order_status(_state(r.state), states[r.run_id]) == status_]
        page = matching[offset : offset + limit]
        return {"orders": [summary(r, states[r.run_id], now) for r in page], "total_entries": len(matching)}

    # -- one order ---------------------------------------------------------------------------------

    @app.get("/{order_id}", dependencies=[can_read, can_read_tries, can_read_results], summary="Get an order")
    def get_order(order_id: str, session: SessionDep) -> dict[str, Any]:
        """
        The order's status, current step, results (the steps' XComs), the history of every try of
        every step (TaskInstance and TaskInstanceHistory; ``error`` from the step's ``failure``
        XCom where Airflow still has it, see :func:`history`), its signals, and the order itself.
        """
        from airflow_order_provider.operators.base import FAILURE_KEY

        run = get_run_or_404(session, order_id)
        states = task_states(session, [run.run_id])[run.run_id]
        xcoms = load_xcoms(session, run, ("return_value", FAILURE_KEY))
        failures = {task: value for (task, key), value in xcoms.items() if key == FAILURE_KEY}
        item = summary(run, states, _now())
        real_id = item["order_id"]
        return {
            "order_id": real_id,
            "run_id": run.run_id,
            "status": item["status"],
            "current_step": item["current_step"],
            "run_state": item["run_state"],
            "results": results(xcoms),
            "history": history(session, run, failures),
            "cancel_request": read_signal(signals.cancel_key(real_id)),
            "shipping_address_change": read_signal(signals.address_key(real_id)),
            "order": _conf(run),
            "created_at": item["created_at"],
            "updated_at": _iso(last_update(session, run)),
            "start_date": _iso(run.start_date),
            "end_date": _iso(run.end_date),
            "task_states": states,
            "links": item["links"],
        }

    # -- signals -----------------------------------------------------------------------------------

    @app.post(
        "/{order_id}/cancel", status_code=status.HTTP_202_ACCEPTED, dependencies=[can_edit],
        summary="Ask to cancel an order",
    )
    def cancel_order(order_id: str, body: CancelBody, session: SessionDep, user: GetUserDep) -> Any:
        """
        Record a cancel request (Variable ``order_processing.cancel.<order_id>``); the order's steps
        read it at their next checkpoint, fail with ``OrderCancelledError`` and the completed steps
        are compensated. Idempotent while the order runs: a repeat answers 202 with the first
        request. 409 (with the request, if any) once the order is compensating, cancelled,
        completed or failed.
        """
        run = get_run_or_404(session, order_id, lock=True)
        real_id = order_id_of(run)
        states = task_states(session, [run.run_id])[run.run_id]
        current = order_status(_state(run.state), states)
        existing = read_signal(signals.cancel_key(real_id))
        if current in FINAL_STATUSES or current == "compensating":
            return conflict(f"Order {real_id} is {current}: it can no longer be cancelled", run, states,
                            cancel_request=existing)
        if existing is not None:
            return JSONResponse(
                status_code=status.HTTP_202_ACCEPTED,
                content={"order_id": real_id, "status": current, "cancel_request": existing},
            )
        request = {"reason": body.reason, "requested_at": _iso(_now()), "requested_by": user.get_name()}
        Variable.set(signals.cancel_key(real_id), request, serialize_json=True, session=session)
        audit(session, "order_api.cancel", run, user, {"order_id": real_id, "reason": body.reason, "method": "POST"})
        return {"order_id": real_id, "status": current, "cancel_request": request}

    @app.post("/{order_id}/shipping-address", dependencies=[can_edit], summary="Change the shipping address")
    def change_shipping_address(
        order_id: str, address: ShippingAddress, session: SessionDep, user: GetUserDep
    ) -> Any:
        """
        Record a new shipping address (Variable ``order_processing.address.<order_id>``), which the
        shipping step uses instead of the order's. Accepted while ``schedule_shipment`` has not
        started (not yet reached, scheduled or queued); 409 once it has, or when the order is
        finished, compensating, or asked to cancel. A later change replaces an earlier one.
        """
        run = get_run_or_404(session, order_id, lock=True)
        real_id = order_id_of(run)
        states = task_states(session, [run.run_id])[run.run_id]
        current = order_status(_state(run.state), states)
        shipping = states.get("schedule_shipment")
        if current in FINAL_STATUSES or current == "compensating":
            return conflict(f"Order {real_id} is {current}: its address can no longer change", run, states)
        if shipping not in ADDRESS_OPEN_STATES:
            return conflict(
                f"Shipping of order {real_id} has started (schedule_shipment is {shipping}): "
                "its address can no longer change", run, states,
            )
        if read_signal(signals.cancel_key(real_id)) is not None:
            return conflict(f"Order {real_id} is being cancelled: its address can no longer change", run, states)
        change = {
            "address": address.model_dump(mode="json"),
            "changed_at": _iso(_now()),
            "changed_by": user.get_name(),
        }
        Variable.set(signals.address_key(real_id), change, serialize_json=True, session=session)
        audit(session, "order_api.shipping_address", run, user, {"order_id": real_id, "method": "POST"})
        return {"order_id": real_id, "status": current, "shipping_address_change": change}

    return app


@cache
def get_app() -> FastAPI:
    """The order API's app, built once per process (the API server's)."""
    return create_app()
