"""Notification service: e-mails go to an outbox and are never sent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import Connection, select
from starlette.responses import Response

from order_services.context import IdempotencyKey, get_context
from order_services.contract import answers, link
from order_services.idempotency import Operation
from order_services.models import NO_NUL, EmailAnswer, EmailRequest, Outbox
from order_services.storage import emails
from order_services.util import isoformat, new_id, utcnow

SERVICE = "notification"

router = APIRouter(prefix="/notification", tags=["notification"])


def queue_email(conn: Connection, op: Operation, req: EmailRequest) -> tuple[int, dict[str, Any]]:
    row = {
        "message_id": new_id("msg"),
        "order_id": req.order_id,
        "to_address": req.to,
        "subject": req.subject,
        "body": req.body,
        "status": "queued",
        "created_at": isoformat(utcnow()),
    }
    conn.execute(emails.insert().values(**row))
    op.details = {"message_id": row["message_id"], "to": req.to, "subject": req.subject}
    return 201, {"message_id": row["message_id"], "order_id": req.order_id, "to": req.to, "status": "queued"}


@router.post(
    "/emails",
    status_code=201,
    operation_id="queueEmail",
    response_model=None,
    responses=answers(
        201,
        EmailAnswer,
        links={
            "ListOutbox": link("listOutbox", order_id="order_id"),
            "GetAudit": link("getAudit", order_id="order_id"),
        },
    ),
)
def create_email(body: EmailRequest, request: Request, idempotency_key: IdempotencyKey) -> Response:
    return get_context(request).execute(
        request,
        idempotency_key=idempotency_key,
        service=SERVICE,
        operation="email",
        payload=body.model_dump(mode="json"),
        order_id=body.order_id,
        work=lambda conn, op: queue_email(conn, op, body),
    )


@router.get("/outbox", operation_id="listOutbox", response_model=None, responses=answers(200, Outbox))
def outbox(request: Request, order_id: Annotated[str | None, Query(pattern=NO_NUL)] = None) -> dict[str, Any]:
    stmt = select(emails).order_by(emails.c.created_at, emails.c.message_id)
    if order_id is not None:
        stmt = stmt.where(emails.c.order_id == order_id)
    with get_context(request).store.read() as conn:
        rows = conn.execute(stmt).mappings().all()
    return {
        "messages": [
            {
                "message_id": r["message_id"],
                "order_id": r["order_id"],
                "to": r["to_address"],
                "subject": r["subject"],
                "body": r["body"],
                "status": r["status"],
                "created_at": r["created_at"],
            }
            for r in rows
        ]
    }
