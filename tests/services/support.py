"""Request builders and small assertions for the reference-services tests."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests
from order_services.testing import new_key

T = TypeVar("T")

__all__ = [
    "address",
    "charge_body",
    "email_body",
    "error_type",
    "ledger",
    "new_key",
    "new_order",
    "new_sku",
    "reservation_body",
    "run_concurrently",
    "shipment_body",
]


def new_order() -> str:
    return f"ord-{uuid.uuid4().hex[:12]}"


def new_sku() -> str:
    return f"SKU-T-{uuid.uuid4().hex[:10].upper()}"


def charge_body(order_id: str, **changes: Any) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "customer_id": "cust-42",
        "amount": 4999,
        "currency": "EUR",
        "payment_method": "pm_card_ok",
    }
    body.update(changes)
    return body


def reservation_body(
    order_id: str, items: list[dict[str, Any]] | None = None, **changes: Any
) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "items": items if items is not None else [{"sku": new_sku(), "quantity": 2}],
        "region": "eu-west",
        "priority": "normal",
    }
    body.update(changes)
    return body


def address(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "Ada Lovelace",
        "line1": "12 Analytical Street",
        "city": "London",
        "postal_code": "N1 9GU",
        "country": "GB",
        "region": "eu-west",
    }
    body.update(changes)
    return body


def shipment_body(order_id: str, reservation_id: str, **changes: Any) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "reservation_id": reservation_id,
        "address": address(),
        "service_level": "standard",
    }
    body.update(changes)
    return body


def email_body(order_id: str, **changes: Any) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "to": "ada@example.com",
        "subject": f"Your order {order_id}",
        "body": "Thank you for your order.",
    }
    body.update(changes)
    return body


def error_type(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"type", "message"}, body
    return body["error"]["type"]


def ledger(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["service"], e["operation"], e["status"]) for e in entries]


def run_concurrently(count: int, fn: Callable[[int], T]) -> list[T]:
    """Call ``fn(i)`` from ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def call(i: int) -> T:
        barrier.wait(timeout=10)
        return fn(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(call, range(count)))
