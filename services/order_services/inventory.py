"""Inventory service: stock, reservations (holds) and their lazy expiry.

Stock per SKU is ``on_hand`` (in the warehouse) and ``reserved`` (held by reservations);
``available = on_hand - reserved``. Committing a reservation (a shipment is scheduled) takes its units
out of both; cancelling the shipment puts them back as a hold.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import Connection, select, update
from starlette.responses import Response

from order_services import errors
from order_services.context import IdempotencyKey, PathId, Settings, get_context
from order_services.contract import answers, link
from order_services.errors import ServiceError
from order_services.idempotency import Operation, write_ledger
from order_services.models import (
    ReasonRequest,
    ReleaseAnswer,
    ReservationAnswer,
    ReservationList,
    ReservationRequest,
    StockAnswer,
    Text,
)
from order_services.storage import Store, insert_ignore, reservation_lines, reservations, stock
from order_services.util import isoformat, new_id, utcnow

SERVICE = "inventory"

DISCONTINUED_SKU = "SKU-DISCONTINUED"
OUT_OF_STOCK_SKU = "SKU-OUT-OF-STOCK"
UNSERVICED_REGION = "unserviced"

router = APIRouter(prefix="/inventory", tags=["inventory"])


def initial_units(sku: str, settings: Settings) -> int:
    return 0 if sku in (OUT_OF_STOCK_SKU, DISCONTINUED_SKU) else settings.initial_stock


def warehouse_for(region: str, priority: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", region.lower()).strip("-") or "default"
    return f"wh-{slug}-{'express' if priority == 'high' else 'main'}"


def reservation_items(conn: Connection, reservation_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(reservation_lines.c.sku, reservation_lines.c.quantity)
        .where(reservation_lines.c.reservation_id == reservation_id)
        .order_by(reservation_lines.c.line_no)
    ).mappings()
    return [{"sku": r["sku"], "quantity": r["quantity"]} for r in rows]


def totals_by_sku(items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Quantities per SKU in SKU order (a fixed lock order avoids deadlocks on PostgreSQL)."""
    totals: dict[str, int] = defaultdict(int)
    for item in items:
        totals[item["sku"]] += item["quantity"]
    return sorted(totals.items())


def adjust_stock(conn: Connection, items: list[dict[str, Any]], *, on_hand: int, reserved: int) -> None:
    """Add ``sign * quantity`` to on_hand / reserved for every line (signs are -1, 0 or +1)."""
    for sku, quantity in totals_by_sku(items):
        conn.execute(
            update(stock)
            .where(stock.c.sku == sku)
            .values(
                on_hand=stock.c.on_hand + on_hand * quantity, reserved=stock.c.reserved + reserved * quantity
            )
        )


def reservation_body(row: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "reservation_id": row["reservation_id"],
        "order_id": row["order_id"],
        "items": items,
        "region": row["region"],
        "warehouse_id": row["warehouse_id"],
        "priority": row["priority"],
        "status": row["status"],
        "expires_at": row["expires_at"],
    }


def lock_reservation(conn: Connection, reservation_id: str) -> dict[str, Any]:
    row = (
        conn.execute(
            select(reservations).where(reservations.c.reservation_id == reservation_id).with_for_update()
        )
        .mappings()
        .first()
    )
    if row is None:
        raise ServiceError(404, errors.RESERVATION_NOT_FOUND, f"reservation {reservation_id} not found")
    return dict(row)


def set_reservation_status(conn: Connection, reservation_id: str, old: str, new: str, **values: Any) -> bool:
    result = conn.execute(
        update(reservations)
        .where(reservations.c.reservation_id == reservation_id)
        .where(reservations.c.status == old)
        .values(status=new, **values)
    )
    return result.rowcount == 1


def reserve(
    conn: Connection, op: Operation, req: ReservationRequest, settings: Settings
) -> tuple[int, dict[str, Any]]:
    items = [{"sku": item.sku, "quantity": item.quantity} for item in req.items]
    op.details = {"items": items, "region": req.region, "priority": req.priority}
    if req.region.lower() == UNSERVICED_REGION:
        raise ServiceError(422, errors.REGION_NOT_SERVICED, f"region {req.region!r} is not serviced")
    discontinued = sorted({item["sku"] for item in items if item["sku"] == DISCONTINUED_SKU})
    if discontinued:
        raise ServiceError(422, errors.ITEM_DISCONTINUED, f"item {discontinued[0]} is discontinued")
    for sku, quantity in totals_by_sku(items):
        insert_ignore(
            conn,
            stock,
            {"sku": sku, "on_hand": initial_units(sku, settings), "reserved": 0},
            index_elements=["sku"],
        )
        # Conditional decrement: never oversells, also under concurrent reservations.
        result = conn.execute(
            update(stock)
            .where(stock.c.sku == sku)
            .where(stock.c.on_hand - stock.c.reserved >= quantity)
            .values(reserved=stock.c.reserved + quantity)
        )
        if result.rowcount != 1:
            available = conn.execute(
                select(stock.c.on_hand - stock.c.reserved).where(stock.c.sku == sku)
            ).scalar()
            raise ServiceError(
                409,
                errors.OUT_OF_STOCK,
                f"{sku}: {quantity} requested, {max(available or 0, 0)} available",
            )
    now = utcnow()
    expires = now + timedelta(seconds=settings.hold_seconds)
    row = {
        "reservation_id": new_id("res"),
        "order_id": req.order_id,
        "region": req.region,
        "warehouse_id": warehouse_for(req.region, req.priority),
        "priority": req.priority,
        "status": "held",
        "expires_at": isoformat(expires),
        "expires_ts": expires.timestamp(),
        "created_at": isoformat(now),
    }
    conn.execute(reservations.insert().values(**row))
    conn.execute(
        reservation_lines.insert(),
        [
            {
                "reservation_id": row["reservation_id"],
                "line_no": n,
                "sku": item["sku"],
                "quantity": item["quantity"],
            }
            for n, item in enumerate(items)
        ],
    )
    op.details["reservation_id"] = row["reservation_id"]
    op.details["warehouse_id"] = row["warehouse_id"]
    return 201, reservation_body(row, items)


def release(
    conn: Connection, op: Operation, reservation_id: str, req: ReasonRequest
) -> tuple[int, dict[str, Any]]:
    row = lock_reservation(conn, reservation_id)
    op.order_id = row["order_id"]
    op.details = {"reservation_id": reservation_id, "reason": req.reason}
    if row["status"] == "committed":
        raise ServiceError(
            409,
            errors.INVALID_STATE,
            f"reservation {reservation_id} is committed to a shipment; cancel the shipment first",
        )
    if row["status"] != "held" or not set_reservation_status(conn, reservation_id, "held", "released"):
        raise ServiceError(
            409, errors.INVALID_STATE, f"reservation {reservation_id} is already {row['status']}"
        )
    items = reservation_items(conn, reservation_id)
    adjust_stock(conn, items, on_hand=0, reserved=-1)
    op.details["items"] = items
    return 200, {"reservation_id": reservation_id, "status": "released"}


def _expire_one(conn: Connection, reservation_id: str, now_ts: float) -> None:
    row = (
        conn.execute(select(reservations).where(reservations.c.reservation_id == reservation_id))
        .mappings()
        .first()
    )
    if row is None or row["status"] != "held" or row["expires_ts"] > now_ts:
        return
    result = conn.execute(
        update(reservations)
        .where(reservations.c.reservation_id == reservation_id)
        .where(reservations.c.status == "held")
        .where(reservations.c.expires_ts <= now_ts)
        .values(status="expired")
    )
    if result.rowcount != 1:  # released or expired by a concurrent request
        return
    items = reservation_items(conn, reservation_id)
    adjust_stock(conn, items, on_hand=0, reserved=-1)
    write_ledger(
        conn,
        order_id=row["order_id"],
        service=SERVICE,
        operation="release",
        status="expired",
        idempotency_key=None,
        details={"reservation_id": reservation_id, "items": items, "expires_at": row["expires_at"]},
    )


def expire_holds(store: Store) -> int:
    """Return the stock of holds that ran out (lazily, on inventory/shipping requests and audit reads)."""
    now_ts = time.time()
    with store.read() as conn:
        due = list(
            conn.execute(
                select(reservations.c.reservation_id)
                .where(reservations.c.status == "held")
                .where(reservations.c.expires_ts <= now_ts)
                .order_by(reservations.c.expires_ts)
            ).scalars()
        )
    for reservation_id in due:
        store.run_write(lambda conn, rid=reservation_id: _expire_one(conn, rid, now_ts))
    return len(due)


@router.post(
    "/reservations",
    status_code=201,
    operation_id="createReservation",
    response_model=None,
    responses=answers(
        201,
        ReservationAnswer,
        errors.OUT_OF_STOCK,
        errors.ITEM_DISCONTINUED,
        errors.REGION_NOT_SERVICED,
        links={
            "GetReservation": link("getReservation", reservation_id="reservation_id"),
            "ReleaseReservation": link("releaseReservation", reservation_id="reservation_id"),
            "ScheduleShipment": link(
                "createShipment", body={"reservation_id": "reservation_id", "order_id": "order_id"}
            ),
            "ListReservations": link("listReservations", order_id="order_id"),
            "GetStock": link("getStock", sku="items/0/sku"),
            "GetAudit": link("getAudit", order_id="order_id"),
        },
    ),
)
def create_reservation(
    body: ReservationRequest, request: Request, idempotency_key: IdempotencyKey
) -> Response:
    ctx = get_context(request)
    expire_holds(ctx.store)
    return ctx.execute(
        request,
        idempotency_key=idempotency_key,
        service=SERVICE,
        operation="reserve",
        payload=body.model_dump(mode="json"),
        order_id=body.order_id,
        work=lambda conn, op: reserve(conn, op, body, ctx.settings),
    )


@router.post(
    "/reservations/{reservation_id}/release",
    status_code=200,
    operation_id="releaseReservation",
    response_model=None,
    responses=answers(
        200,
        ReleaseAnswer,
        errors.RESERVATION_NOT_FOUND,
        errors.INVALID_STATE,
        links={"GetReservation": link("getReservation", reservation_id="reservation_id")},
    ),
)
def release_reservation(
    reservation_id: PathId,
    request: Request,
    idempotency_key: IdempotencyKey,
    body: ReasonRequest | None = None,
) -> Response:
    ctx = get_context(request)
    expire_holds(ctx.store)
    body = body or ReasonRequest()
    return ctx.execute(
        request,
        idempotency_key=idempotency_key,
        service=SERVICE,
        operation="release",
        payload=body.model_dump(mode="json"),
        order_id=None,
        work=lambda conn, op: release(conn, op, reservation_id, body),
    )


@router.get(
    "/reservations",
    operation_id="listReservations",
    response_model=None,
    responses=answers(200, ReservationList),
)
def get_reservations_of_order(request: Request, order_id: Annotated[Text, Query()]) -> dict[str, Any]:
    """Every reservation of the order, oldest first (holds that ran out are expired first, as on every
    inventory request)."""
    ctx = get_context(request)
    expire_holds(ctx.store)
    with ctx.store.read() as conn:
        rows = (
            conn.execute(
                select(reservations)
                .where(reservations.c.order_id == order_id)
                .order_by(reservations.c.created_at, reservations.c.reservation_id)
            )
            .mappings()
            .all()
        )
        return {
            "reservations": [
                reservation_body(dict(row), reservation_items(conn, row["reservation_id"])) for row in rows
            ]
        }


@router.get(
    "/reservations/{reservation_id}",
    operation_id="getReservation",
    response_model=None,
    responses=answers(200, ReservationAnswer, errors.RESERVATION_NOT_FOUND),
)
def get_reservation(reservation_id: PathId, request: Request) -> dict[str, Any]:
    ctx = get_context(request)
    expire_holds(ctx.store)
    with ctx.store.read() as conn:
        row = (
            conn.execute(select(reservations).where(reservations.c.reservation_id == reservation_id))
            .mappings()
            .first()
        )
        if row is None:
            raise ServiceError(404, errors.RESERVATION_NOT_FOUND, f"reservation {reservation_id} not found")
        return reservation_body(dict(row), reservation_items(conn, reservation_id))


@router.get("/stock/{sku}", operation_id="getStock", response_model=None, responses=answers(200, StockAnswer))
def get_stock(sku: PathId, request: Request) -> dict[str, Any]:
    ctx = get_context(request)
    expire_holds(ctx.store)
    with ctx.store.read() as conn:
        row = conn.execute(select(stock).where(stock.c.sku == sku)).mappings().first()
    on_hand, reserved = (row["on_hand"], row["reserved"]) if row else (initial_units(sku, ctx.settings), 0)
    return {"sku": sku, "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved}
