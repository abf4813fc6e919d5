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
* ``GET /orders/health``: ``ok``, or ``degraded`` naming each missing order pool and connection.
* ``GET /orders/{order_id}``: status, current step, what it waits for that does not exist (a pool), results, history of every try, signals.
* ``POST /orders/{order_id}/cancel``: ``{"reason"}``; 202 (a repeat: the first), 409 when too late
  (the carrier has the parcel, or the order is finished or being undone). During an approval the
  cancel ends the wait at once.
* ``POST /orders/{order_id}/shipping-address``: a new address until the shipping step starts its
  first try (decided under a lock on that task's row, so the step sees the change or the API
  refuses it).

Modules: :mod:`~airflow_order_provider.api.auth` (who may do what),
:mod:`~airflow_order_provider.api.queries` (database reads and writes),
:mod:`~airflow_order_provider.api.responses` (answers), :mod:`~airflow_order_provider.api.status`
(the status rule), this one (the routes).
* ``GET /orders/ui``: the Orders page (``orders/ui`` is therefore not a usable order id here).
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from airflow.api_fastapi.common.dagbag import DagBagDep, create_dag_bag
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.models import Variable
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from fastapi import Body, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, exists, func, select
from sqlalchemy.exc import IntegrityError

from airflow_order_provider import signals
from airflow_order_provider.api.auth import can_edit, can_read, can_read_results, can_read_tries, can_trigger
from airflow_order_provider.api.queries import (
    _state,
    audit,
    find_run,
    get_run_or_404,
    has_tried,
    last_update,
    load_xcoms,
    lock_task_instance,
    read_signal,
    task_states,
    tries,
)
from airflow_order_provider.api.responses import (
    _conf,
    _iso,
    _now,
    conflict,
    history,
    links,
    order_id_of,
    results,
    summary,
    validation_error,
)
from airflow_order_provider.api.status import (
    CANCELLED_TASK,
    DAG_ID,
    FINAL_STATUSES,
    PICKED_UP_TASK,
    STATUSES,
    compensation_story,
    order_status,
)
from airflow_order_provider.deployment import check, waiting_on_missing_pools
from airflow_order_provider.models import Order, ShippingAddress, _describe
from airflow_order_provider.operators.compensation import UNDO_KEY
from airflow_order_provider.order_saga import ORDER_SAGA
from airflow_order_provider.saga.failure import FAILURE_KEY

STATIC_DIR = Path(__file__).parent / "static"
UI_PATH = "ui"
#: The deployment check (``GET /orders/health``): not an order id either.
HEALTH_PATH = "health"

#: The step whose start closes the shipping address to changes.
SHIPPING_STEP = next(step.task_id for step in ORDER_SAGA.steps if step.service == "shipping")
#: The approval step a cancel ends at once.
APPROVAL_STEP = next(step.task_id for step in ORDER_SAGA.steps if step.gate_task_id)
#: States of the shipping step in which the shipping address can still change.
ADDRESS_OPEN_STATES = frozenset({None, "scheduled", "queued"})

#: The statuses, as the list filter takes them (one definition: api/status.py).
OrderStatus = Literal[STATUSES]  # type: ignore[valid-type]


class CancelBody(BaseModel):
    """Why the order is cancelled."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Annotated[str, Field(min_length=1, max_length=500)]


class _OrderCancel:
    """The user an approval request is answered by when a cancel ends it."""

    def get_id(self) -> str:
        return signals.CANCELLED_BY

    def get_name(self) -> str:
        return signals.CANCELLED_BY


def end_approval_for_cancel(session: Any, run: DagRun) -> bool:
    """
    Answer the order's pending approval request with *Reject* on the customer's behalf, so that a
    cancel ends the wait within one poll; the approval step then reads the cancel and the payment
    is refunded. False when no request is pending (nothing to end).
    """
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail

    from airflow_order_provider.operators.approval import REJECT

    try:
        update_hitl_detail(
            dag_id=DAG_ID, dag_run_id=run.run_id, task_id=APPROVAL_STEP,
            update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[REJECT], params_input={}),
            user=_OrderCancel(), session=session,
        )
    except HTTPException:  # already answered, or not asked yet: the step reads the cancel itself
        return False
    return True


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
        if order.order_id in (UI_PATH, HEALTH_PATH):
            return validation_error(
                [{"loc": ["body", "order_id"], "field": "order_id", "type": "value_error",
                  "msg": f"order_id: {order.order_id!r} is reserved by the order API (its Orders page and health)"}]
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
                TaskInstance.task_id == CANCELLED_TASK,
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

    # -- the deployment's health ---------------------------------------------------------------------

    @app.get(f"/{HEALTH_PATH}", dependencies=[can_read], summary="What the deployment lacks for orders")
    def health(session: SessionDep) -> dict[str, Any]:
        """
        ``status`` ``ok``, or ``degraded`` with ``problems`` naming each missing order pool (its
        tasks are never scheduled) and each missing service connection; ``pools`` and
        ``connections`` in detail. ``airflow orders setup`` fixes the pools.
        """
        found = check(session)
        return {"status": "ok" if found["ok"] else "degraded", **found}

    # -- one order ---------------------------------------------------------------------------------

    @app.get("/{order_id}", dependencies=[can_read, can_read_tries, can_read_results], summary="Get an order")
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
        item = summary(run, states, _now())
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
        if states.get(PICKED_UP_TASK) == "success":
            return conflict(f"Order {real_id} is with the carrier: it can no longer be cancelled", run, states,
                            cancel_request=existing)
        if existing is not None:
            return JSONResponse(
                status_code=status.HTTP_202_ACCEPTED,
                content={"order_id": real_id, "status": current, "cancel_request": existing},
            )
        request = {"reason": body.reason, "requested_at": _iso(_now()), "requested_by": user.get_name()}
        Variable.set(signals.cancel_key(real_id), request, serialize_json=True, session=session)
        if states.get(APPROVAL_STEP) == "awaiting_input":
            request["ended_approval"] = end_approval_for_cancel(session, run)
        audit(session, "order_api.cancel", run, user, {"order_id": real_id, "reason": body.reason, "method": "POST"})
        return {"order_id": real_id, "status": current, "cancel_request": request}

    @app.post("/{order_id}/shipping-address", dependencies=[can_edit], summary="Change the shipping address")
    def change_shipping_address(
        order_id: str, address: ShippingAddress, session: SessionDep, user: GetUserDep
    ) -> Any:
        """
        Record a new shipping address (Variable ``order_processing.address.<order_id>``), which the
        shipping step uses instead of the order's. Accepted while the shipping step has not started
        its first try (not yet reached, scheduled or queued), decided under a lock on its row; 409
        once it has, or when the order is finished, compensating, or asked to cancel. A later
        change replaces an earlier one.
        """
        run = get_run_or_404(session, order_id, lock=True)
        real_id = order_id_of(run)
        states = task_states(session, [run.run_id])[run.run_id]
        current = order_status(_state(run.state), states)
        if current in FINAL_STATUSES or current == "compensating":
            return conflict(f"Order {real_id} is {current}: its address can no longer change", run, states)
        # Decided under a lock on the shipping step's row, which its start must take: the step
        # either reads this change, or has started and the change is refused.
        shipping_ti = lock_task_instance(session, run, SHIPPING_STEP)
        shipping = _state(shipping_ti.state) if shipping_ti is not None else None
        if shipping not in ADDRESS_OPEN_STATES or has_tried(session, run, SHIPPING_STEP):
            return conflict(
                f"Shipping of order {real_id} has started ({SHIPPING_STEP} is {shipping}): "
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
