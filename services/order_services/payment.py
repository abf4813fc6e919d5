"""Payment service: charges and refunds."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import Connection, func, select, update
from starlette.responses import Response

from order_services import errors
from order_services.context import IdempotencyKey, PathId, get_context
from order_services.contract import answers, link
from order_services.errors import ServiceError
from order_services.idempotency import Operation
from order_services.models import (
    ChargeAnswer,
    ChargeList,
    ChargeRequest,
    ChargeWithRefunds,
    RefundAnswer,
    RefundRequest,
    Text,
)
from order_services.storage import Store, charges, refunds
from order_services.util import isoformat, new_id, utcnow

SERVICE = "payment"

router = APIRouter(prefix="/payment", tags=["payment"])

DECLINES: dict[str, tuple[str, str]] = {
    "pm_card_declined": (errors.PAYMENT_DECLINED, "the card was declined"),
    "pm_card_fraud": (errors.FRAUD_DETECTED, "the charge was blocked as fraudulent"),
    "pm_card_insufficient_funds": (errors.INSUFFICIENT_FUNDS, "the card has insufficient funds"),
    "pm_card_expired": (errors.CARD_EXPIRED, "the card has expired"),
}
DECLINE_TYPES = tuple(error_type for error_type, _message in DECLINES.values())


def charge_status(stored_status: str, amount: int, refunded_amount: int) -> str:
    """``succeeded``, ``partially_refunded`` (some of it refunded) or ``refunded`` (all of it)."""
    if stored_status == "refunded" or refunded_amount >= amount:
        return "refunded"
    return "partially_refunded" if refunded_amount > 0 else "succeeded"


def _charge_body(row: dict[str, Any], refunded_amount: int = 0) -> dict[str, Any]:
    return {
        "payment_id": row["payment_id"],
        "order_id": row["order_id"],
        "customer_id": row["customer_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "status": charge_status(row["status"], row["amount"], refunded_amount),
        "refunded_amount": refunded_amount,
        "transaction_ref": row["transaction_ref"],
        "processed_at": row["processed_at"],
    }


def _with_refunds(row: dict[str, Any], refund_bodies: list[dict[str, Any]]) -> dict[str, Any]:
    body = _charge_body(row, sum(r["amount"] for r in refund_bodies))
    body["refunds"] = refund_bodies
    return body


def _refund_body(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "refund_id": row["refund_id"],
        "payment_id": row["payment_id"],
        "order_id": row["order_id"],
        "amount": row["amount"],
        "status": row["status"],
        "reason": row["reason"],
    }


def charge(conn: Connection, op: Operation, req: ChargeRequest) -> tuple[int, dict[str, Any]]:
    op.details = {"amount": req.amount, "currency": req.currency, "payment_method": req.payment_method}
    decline = DECLINES.get(req.payment_method)
    if decline is not None:
        raise ServiceError(402, decline[0], decline[1])
    row = {
        "payment_id": new_id("pay"),
        "order_id": req.order_id,
        "customer_id": req.customer_id,
        "amount": req.amount,
        "currency": req.currency,
        "payment_method": req.payment_method,
        "status": "succeeded",
        "transaction_ref": new_id("txn"),
        "processed_at": isoformat(utcnow()),
    }
    conn.execute(charges.insert().values(**row))
    op.details["payment_id"] = row["payment_id"]
    return 201, _charge_body(row)


def refund(
    conn: Connection, op: Operation, payment_id: str, req: RefundRequest
) -> tuple[int, dict[str, Any]]:
    """Refund ``req.amount`` (default: all that is left). The charge row is locked first, so concurrent
    refunds of one charge run one after the other and never refund more than was charged."""
    row = (
        conn.execute(select(charges).where(charges.c.payment_id == payment_id).with_for_update())
        .mappings()
        .first()
    )
    if row is None:
        raise ServiceError(404, errors.PAYMENT_NOT_FOUND, f"payment {payment_id} not found")
    op.order_id = row["order_id"]
    refunded = refunded_amount(conn, payment_id)
    left = 0 if row["status"] == "refunded" else max(row["amount"] - refunded, 0)
    amount = req.amount if req.amount is not None else left
    op.details = {"payment_id": payment_id, "amount": amount, "reason": req.reason}
    if left == 0:
        raise ServiceError(409, errors.INVALID_STATE, f"payment {payment_id} is already refunded")
    if amount > left:
        raise ServiceError(
            422,
            errors.VALIDATION,
            f"amount: {amount} exceeds the refundable amount {left} "
            f"(charged {row['amount']}, refunded {refunded})",
        )
    if amount == left:
        conn.execute(update(charges).where(charges.c.payment_id == payment_id).values(status="refunded"))
    refund_row = {
        "refund_id": new_id("ref"),
        "payment_id": payment_id,
        "order_id": row["order_id"],
        "amount": amount,
        "status": "succeeded",
        "reason": req.reason,
        "created_at": isoformat(utcnow()),
    }
    conn.execute(refunds.insert().values(**refund_row))
    op.details.update(refund_id=refund_row["refund_id"], refunded_amount=refunded + amount)
    return 201, _refund_body(refund_row)


def refunded_amount(conn: Connection, payment_id: str) -> int:
    total = conn.execute(
        select(func.coalesce(func.sum(refunds.c.amount), 0)).where(refunds.c.payment_id == payment_id)
    ).scalar_one()
    return int(total)


def load_charge(store: Store, payment_id: str) -> dict[str, Any]:
    with store.read() as conn:
        row = conn.execute(select(charges).where(charges.c.payment_id == payment_id)).mappings().first()
        if row is None:
            raise ServiceError(404, errors.PAYMENT_NOT_FOUND, f"payment {payment_id} not found")
        refund_rows = conn.execute(
            select(refunds)
            .where(refunds.c.payment_id == payment_id)
            .order_by(refunds.c.created_at, refunds.c.refund_id)
        ).mappings()
        return _with_refunds(dict(row), [_refund_body(dict(r)) for r in refund_rows])


def list_charges(store: Store, order_id: str) -> list[dict[str, Any]]:
    """Every stored charge of the order, oldest first, each with its refunds (oldest first).

    Declined charges raise before anything is stored, so they are not listed (only the ledger has them).
    """
    with store.read() as conn:
        rows = (
            conn.execute(
                select(charges)
                .where(charges.c.order_id == order_id)
                .order_by(charges.c.processed_at, charges.c.payment_id)
            )
            .mappings()
            .all()
        )
        payment_ids = [r["payment_id"] for r in rows]
        by_payment: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if payment_ids:
            refund_rows = conn.execute(
                select(refunds)
                .where(refunds.c.payment_id.in_(payment_ids))
                .order_by(refunds.c.created_at, refunds.c.refund_id)
            ).mappings()
            for r in refund_rows:
                by_payment[r["payment_id"]].append(_refund_body(dict(r)))
    return [_with_refunds(dict(row), by_payment[row["payment_id"]]) for row in rows]


@router.post(
    "/charges",
    status_code=201,
    operation_id="createCharge",
    response_model=None,
    responses=answers(
        201,
        ChargeAnswer,
        *DECLINE_TYPES,
        links={
            "GetCharge": link("getCharge", payment_id="payment_id"),
            "RefundCharge": link("refundCharge", payment_id="payment_id"),
            "ListCharges": link("listCharges", order_id="order_id"),
            "GetAudit": link("getAudit", order_id="order_id"),
        },
    ),
)
def create_charge(body: ChargeRequest, request: Request, idempotency_key: IdempotencyKey) -> Response:
    return get_context(request).execute(
        request,
        idempotency_key=idempotency_key,
        service=SERVICE,
        operation="charge",
        payload=body.model_dump(mode="json"),
        order_id=body.order_id,
        work=lambda conn, op: charge(conn, op, body),
    )


@router.post(
    "/charges/{payment_id}/refund",
    status_code=201,
    operation_id="refundCharge",
    response_model=None,
    responses=answers(
        201,
        RefundAnswer,
        errors.PAYMENT_NOT_FOUND,
        errors.INVALID_STATE,
        errors.VALIDATION,
        links={
            "GetCharge": link("getCharge", payment_id="payment_id"),
            "RefundAgain": link("refundCharge", payment_id="payment_id"),
        },
    ),
)
def create_refund(
    payment_id: PathId, body: RefundRequest, request: Request, idempotency_key: IdempotencyKey
) -> Response:
    return get_context(request).execute(
        request,
        idempotency_key=idempotency_key,
        service=SERVICE,
        operation="refund",
        payload=body.model_dump(mode="json"),
        order_id=None,
        work=lambda conn, op: refund(conn, op, payment_id, body),
    )


@router.get("/charges", operation_id="listCharges", response_model=None, responses=answers(200, ChargeList))
def get_charges_of_order(request: Request, order_id: Annotated[Text, Query()]) -> dict[str, Any]:
    return {"charges": list_charges(get_context(request).store, order_id)}


@router.get(
    "/charges/{payment_id}",
    operation_id="getCharge",
    response_model=None,
    responses=answers(200, ChargeWithRefunds, errors.PAYMENT_NOT_FOUND),
)
def get_charge(payment_id: PathId, request: Request) -> dict[str, Any]:
    return load_charge(get_context(request).store, payment_id)
