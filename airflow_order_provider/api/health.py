"""``GET /orders/health``: what the deployment lacks for orders (pools, connections)."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.common.db.common import SessionDep
from fastapi import APIRouter

from airflow_order_provider.api.auth import can_read
from airflow_order_provider.deployment import check

#: The deployment check's path: not a usable order id either.
HEALTH_PATH = "health"

router = APIRouter()


@router.get(f"/{HEALTH_PATH}", dependencies=[can_read], summary="What the deployment lacks for orders")
def health(session: SessionDep) -> dict[str, Any]:
    """
    ``status`` ``ok``, or ``degraded`` with ``problems`` naming each missing order pool (its
    tasks are never scheduled) and each missing service connection; ``pools`` and
    ``connections`` in detail. ``airflow orders setup`` fixes the pools.
    """
    found = check(session)
    return {"status": "ok" if found["ok"] else "degraded", **found}
