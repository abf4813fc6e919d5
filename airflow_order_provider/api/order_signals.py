"""An order's signals: cancel it, change where it ships (``POST /orders/{order_id}/...``)."""

from __future__ import annotations

from typing import Annotated, Any

from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.models import Variable
from airflow.models.dagrun import DagRun
from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from airflow_order_provider import signals
from airflow_order_provider.api.airflow_rest import answer_required_action
from airflow_order_provider.api.auth import can_edit
from airflow_order_provider.api.queries import (
    audit,
    get_run_or_404,
    has_tried,
    lock_task_instance,
    read_signal,
    state_name,
    task_states,
)
from airflow_order_provider.api.responses import conflict, iso, order_id_of, utcnow
from airflow_order_provider.api.status import DAG_ID, FINAL_STATUSES, PICKED_UP_TASK, order_status
from airflow_order_provider.models import ShippingAddress
from airflow_order_provider.order_saga import ORDER_SAGA

#: The step whose start closes the shipping address to changes.
SHIPPING_STEP = next(step.task_id for step in ORDER_SAGA.steps if step.service == "shipping")
#: The approval step a cancel ends at once.
APPROVAL_STEP = next(step.task_id for step in ORDER_SAGA.steps if step.gate_task_id)
#: States of the shipping step in which the shipping address can still change.
ADDRESS_OPEN_STATES = frozenset({None, "scheduled", "queued"})


class CancelBody(BaseModel):
    """Why the order is cancelled."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Annotated[str, Field(min_length=1, max_length=500)]


def end_approval_for_cancel(request: Request, user: Any, run: DagRun) -> bool:
    """
    Answer the order's pending approval request with *Reject*, as the user who cancelled, so that
    a cancel ends the wait at once; the approval step then reads the cancel (committed before
    this call) and the payment is refunded. False when no request is pending (nothing to end).
    """
    from airflow_order_provider.operators.approval import REJECT

    return answer_required_action(
        request, user, dag_id=DAG_ID, run_id=run.run_id, task_id=APPROVAL_STEP, chosen_options=[REJECT],
    )


router = APIRouter()


@router.post(
    "/{order_id}/cancel", status_code=status.HTTP_202_ACCEPTED, dependencies=[can_edit],
    summary="Ask to cancel an order",
)
def cancel_order(
    order_id: str, body: CancelBody, request: Request, session: SessionDep, user: GetUserDep
) -> Any:
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
    current = order_status(state_name(run.state), states)
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
    cancel = {"reason": body.reason, "requested_at": iso(utcnow()), "requested_by": user.get_name()}
    Variable.set(signals.cancel_key(real_id), cancel, serialize_json=True, session=session)
    audit(session, "order_api.cancel", run, user, {"order_id": real_id, "reason": body.reason, "method": "POST"})
    if states.get(APPROVAL_STEP) == "awaiting_input":
        # The cancel is committed (and the run's lock released) before Airflow answers the request
        # in a transaction of its own: the resumed step finds it, and the two cannot deadlock.
        session.commit()
        cancel["ended_approval"] = end_approval_for_cancel(request, user, run)
    return {"order_id": real_id, "status": current, "cancel_request": cancel}

@router.post("/{order_id}/shipping-address", dependencies=[can_edit], summary="Change the shipping address")
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
    current = order_status(state_name(run.state), states)
    if current in FINAL_STATUSES or current == "compensating":
        return conflict(f"Order {real_id} is {current}: its address can no longer change", run, states)
    # Decided under a lock on the shipping step's row, which its start must take: the step
    # either reads this change, or has started and the change is refused.
    shipping_ti = lock_task_instance(session, run, SHIPPING_STEP)
    shipping = state_name(shipping_ti.state) if shipping_ti is not None else None
    if shipping not in ADDRESS_OPEN_STATES or has_tried(session, run, SHIPPING_STEP):
        return conflict(
            f"Shipping of order {real_id} has started ({SHIPPING_STEP} is {shipping}): "
            "its address can no longer change", run, states,
        )
    if read_signal(signals.cancel_key(real_id)) is not None:
        return conflict(f"Order {real_id} is being cancelled: its address can no longer change", run, states)
    change = {
        "address": address.model_dump(mode="json"),
        "changed_at": iso(utcnow()),
        "changed_by": user.get_name(),
    }
    Variable.set(signals.address_key(real_id), change, serialize_json=True, session=session)
    audit(session, "order_api.shipping_address", run, user, {"order_id": real_id, "method": "POST"})
    return {"order_id": real_id, "status": current, "shipping_address_change": change}
