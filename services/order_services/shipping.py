"""Shipping service: scheduling (commits the reservation), cancellation and lazy dispatch."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import Connection, select, update
from starlette.responses import Response

from order_services import errors
from order_services.context import IdempotencyKey, PathId, Settings, get_context
from order_services.contract import answers, link
from order_services.errors import ServiceError
from order_services.idempotency import Operation
from order_services.inventory import (
    adjust_stock,
    expire_holds,
    lock_reservation,
    reservation_items,
    set_reservation_status,
)
from order_services.models import (
    CancelAnswer,
    ReasonRequest,
    ShipmentAnswer,
    ShipmentList,
    ShipmentRequest,
    Text,
)
from order_services.storage import shipments
from order_services.util import isoformat, new_id, tracking_number, utcnow

SERVICE = "shipping"

router = APIRouter(prefix="/shipping", tags=["shipping"])

CARRIERS = {"standard": "ACME Freight", "express": "ACME Express"}
TRANSIT_DAYS = {"standard": 5, "express": 2}


def effective_status(row: dict[str, Any], now_ts: float | None = None) -> str:
    """``scheduled`` turns into ``dispatched`` once the dispatch time has passed."""
    if row["status"] == "scheduled" and (now_ts if now_ts is not None else time.time()) >= row["dispatch_ts"]:
        return "dispatched"
    return row["status"]


def shipment_body(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "shipment_id": row["shipment_id"],
        "order_id": row["order_id"],
        "reservation_id": row["reservation_id"],
        "tracking_number": row["tracking_number"],
        "carrier": row["carrier"],
        "service_level": row["service_level"],
        "address": row["address"],
        "status": effective_status(row),
        "estimated_delivery": row["estimated_delivery"],
        "dispatch_at": row["dispatch_at"],
    }


def schedule(
    conn: Connection, op: Operation, req: ShipmentRequest, settings: Settings
) -> tuple[int, dict[str, Any]]:
    op.details = {"reservation_id": req.reservation_id, "service_level": req.service_level}
    if "UNDELIVERABLE" in req.address.line1.upper():
        raise ServiceError(422, errors.ADDRESS_UNDELIVERABLE, "address.line1: the address is undeliverable")
    reservation = lock_reservation(conn, req.reservation_id)
    if reservation["order_id"] != req.order_id:
        raise ServiceError(
            409,
            errors.INVALID_STATE,
            f"reservation {req.reservation_id} belongs to order {reservation['order_id']}, not {req.order_id}",
        )
    if reservation["status"] != "held" or not set_reservation_status(
        conn, req.reservation_id, "held", "committed"
    ):
        raise ServiceError(
            409,
            errors.INVALID_STATE,
            f"reservation {req.reservation_id} is {reservation['status']}, not held",
        )
    adjust_stock(conn, reservation_items(conn, req.reservation_id), on_hand=-1, reserved=-1)
    now = utcnow()
    dispatch = now + timedelta(seconds=settings.dispatch_delay)
    row = {
        "shipment_id": new_id("shp"),
        "order_id": req.order_id,
        "reservation_id": req.reservation_id,
        "tracking_number": tracking_number(),
        "carrier": CARRIERS[req.service_level],
        "service_level": req.service_level,
        "address": req.address.model_dump(mode="json"),
        "status": "scheduled",
        "estimated_delivery": (now + timedelta(days=TRANSIT_DAYS[req.service_level])).date().isoformat(),
        "dispatch_at": isoformat(dispatch),
        "dispatch_ts": dispatch.timestamp(),
        "created_at": isoformat(now),
    }
    conn.execute(shipments.insert().values(**row))
    op.details.update(shipment_id=row["shipment_id"], tracking_number=row["tracking_number"])
    body = shipment_body(row)
    body["status"] = "scheduled"
    return 201, body


def cancel(
    conn: Connection, op: Operation, shipment_id: str, req: ReasonRequest, settings: Settings
) -> tuple[int, dict[str, Any]]:
    row = (
        conn.execute(select(shipments).where(shipments.c.shipment_id == shipment_id).with_for_update())
        .mappings()
        .first()
    )
    if row is None:
        raise ServiceError(404, errors.SHIPMENT_NOT_FOUND, f"shipment {shipment_id} not found")
    op.order_id = row["order_id"]
    op.details = {"shipment_id": shipment_id, "reservation_id": row["reservation_id"], "reason": req.reason}
    now = utcnow()
    status = effective_status(dict(row), now.timestamp())
    if status != "scheduled":
        raise ServiceError(409, errors.INVALID_STATE, f"shipment {shipment_id} is already {status}")
    result = conn.execute(
        update(shipments)
        .where(shipments.c.shipment_id == shipment_id)
        .where(shipments.c.status == "scheduled")
        .values(status="cancelled", cancelled_at=isoformat(now))
    )
    if result.rowcount != 1:
        raise ServiceError(409, errors.INVALID_STATE, f"shipment {shipment_id} is already cancelled")
    # The reservation becomes a hold again (a fresh one) so that it can be released.
    reservation_id = row["reservation_id"]
    lock_reservation(conn, reservation_id)
    expires = now + timedelta(seconds=settings.hold_seconds)
    if set_reservation_status(
        conn,
        reservation_id,
        "committed",
        "held",
        expires_at=isoformat(expires),
        expires_ts=expires.timestamp(),
    ):
        adjust_stock(conn, reservation_items(conn, reservation_id), on_hand=1, reserved=1)
    return 200, {"shipment_id": shipment_id, "status": "cancelled"}


@router.post(
    "/shipments",
    status_code=201,
    operation_id="createShipment",
    response_model=None,
    responses=answers(
        201,
        ShipmentAnswer,
        errors.RESERVATION_NOT_FOUND,
        errors.INVALID_STATE,
        errors.ADDRESS_UNDELIVERABLE,
        links={
            "GetShipment": link("getShipment", shipment_id="shipment_id"),
            "CancelShipment": link("cancelShipment", shipment_id="shipment_id"),
            "ListShipments": link("listShipments", order_id="order_id"),
            "GetReservation": link("getReservation", reservation_id="reservation_id"),
            "GetAudit": link("getAudit", order_id="order_id"),
        },
    ),
)
def create_shipment(body: ShipmentRequest, request: Request, idempotency_key: IdempotencyKey) -> Response:
    ctx = get_context(request)
    expire_holds(ctx.store)
    return ctx.execute(
        request,
        idempotency_key=idempotency_key,
        service=SERVICE,
        operation="schedule",
        payload=body.model_dump(mode="json"),
        order_id=body.order_id,
        work=lambda conn, op: schedule(conn, op, body, ctx.settings),
    )


@router.post(
    "/shipments/{shipment_id}/cancel",
    status_code=200,
    operation_id="cancelShipment",
    response_model=None,
    responses=answers(
        200,
        CancelAnswer,
        errors.SHIPMENT_NOT_FOUND,
        errors.INVALID_STATE,
        links={"GetShipment": link("getShipment", shipment_id="shipment_id")},
    ),
)
def cancel_shipment(
    shipment_id: PathId,
    request: Request,
    idempotency_key: IdempotencyKey,
    body: ReasonRequest | None = None,
) -> Response:
    ctx = get_context(request)
    body = body or ReasonRequest()
    return ctx.execute(
        request,
        idempotency_key=idempotency_key,
        service=SERVICE,
        operation="cancel",
        payload=body.model_dump(mode="json"),
        order_id=None,
        work=lambda conn, op: cancel(conn, op, shipment_id, body, ctx.settings),
    )


@router.get(
    "/shipments", operation_id="listShipments", response_model=None, responses=answers(200, ShipmentList)
)
def get_shipments_of_order(request: Request, order_id: Annotated[Text, Query()]) -> dict[str, Any]:
    """Every shipment of the order, oldest first (cancelled ones included)."""
    with get_context(request).store.read() as conn:
        rows = (
            conn.execute(
                select(shipments)
                .where(shipments.c.order_id == order_id)
                .order_by(shipments.c.created_at, shipments.c.shipment_id)
            )
            .mappings()
            .all()
        )
    return {"shipments": [shipment_body(dict(row)) for row in rows]}


@router.get(
    "/shipments/{shipment_id}",
    operation_id="getShipment",
    response_model=None,
    responses=answers(200, ShipmentAnswer, errors.SHIPMENT_NOT_FOUND),
)
def get_shipment(shipment_id: PathId, request: Request) -> dict[str, Any]:
    with get_context(request).store.read() as conn:
        row = conn.execute(select(shipments).where(shipments.c.shipment_id == shipment_id)).mappings().first()
    if row is None:
        raise ServiceError(404, errors.SHIPMENT_NOT_FOUND, f"shipment {shipment_id} not found")
    return shipment_body(dict(row))
