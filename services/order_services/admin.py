"""Audit ledger reads, fault injection admin and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import JSONResponse, Response

from order_services.context import PathId, get_context
from order_services.contract import answers
from order_services.inventory import expire_holds
from order_services.models import (
    AuditAnswer,
    FaultConfigAnswer,
    FaultList,
    FaultRequest,
    FaultsCleared,
    HealthAnswer,
    ServiceName,
)
from order_services.storage import ledger

router = APIRouter()


@router.get(
    "/health",
    tags=["admin"],
    operation_id="health",
    response_model=None,
    responses=answers(200, HealthAnswer),
)
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.head("/health", tags=["admin"], operation_id="healthHead", response_model=None)
def health_head() -> Response:
    return JSONResponse({"status": "ok"})  # the headers of GET; the server sends no body for HEAD


@router.get(
    "/audit/{order_id}",
    tags=["audit"],
    operation_id="getAudit",
    response_model=None,
    responses=answers(200, AuditAnswer),
)
def audit(order_id: PathId, request: Request) -> dict[str, Any]:
    ctx = get_context(request)
    expire_holds(ctx.store)
    with ctx.store.read() as conn:
        rows = conn.execute(
            select(ledger).where(ledger.c.order_id == order_id).order_by(ledger.c.id)
        ).mappings()
        entries = [
            {
                "id": r["id"],
                "service": r["service"],
                "operation": r["operation"],
                "status": r["status"],
                "idempotency_key": r["idempotency_key"],
                "created_at": r["created_at"],
                "details": r["details"],
            }
            for r in rows
        ]
    return {"order_id": order_id, "entries": entries}


@router.post(
    "/admin/faults",
    tags=["admin"],
    operation_id="setFaults",
    response_model=None,
    responses=answers(200, FaultConfigAnswer),
)
def set_faults(body: FaultRequest, request: Request) -> dict[str, Any]:
    config = get_context(request).faults.set(
        body.service, body.error_rate, body.latency_ms, body.seed, body.phase
    )
    return config.public()


@router.get(
    "/admin/faults",
    tags=["admin"],
    operation_id="listFaults",
    response_model=None,
    responses=answers(200, FaultList),
)
def list_faults(request: Request) -> dict[str, Any]:
    faults = get_context(request).faults
    return {"faults": faults.list(), "received": faults.received()}


@router.delete(
    "/admin/faults",
    tags=["admin"],
    operation_id="clearFaults",
    response_model=None,
    responses=answers(200, FaultsCleared),
)
def clear_faults(request: Request, service: ServiceName | None = None) -> dict[str, Any]:
    faults = get_context(request).faults
    faults.clear(service)
    return {"faults": faults.list()}
