"""
Signals to a running order: cancel it, change its shipping address.

A signal is recorded durably in Airflow as a Variable (so it survives restarts and is visible
under Admin > Variables), written by the order API (:mod:`airflow_order_provider.api`) and read
by the order's steps at their checkpoints:

* ``order_processing.cancel.<order_id>``: ``{"reason", "requested_at", "requested_by"}``. Every
  forward step checks it before calling its service, and the carrier-pickup wait checks it while
  it waits; a cancelled order's step fails with ``OrderCancelledError`` and the completed steps are
  compensated in reverse order.
* ``order_processing.address.<order_id>``: ``{"address": {...}, "changed_at", "changed_by"}``.
  The shipping step ships to it instead of the address the order was placed with.
"""

from __future__ import annotations

from typing import Any

CANCEL_PREFIX = "order_processing.cancel."
ADDRESS_PREFIX = "order_processing.address."


def cancel_key(order_id: str) -> str:
    return f"{CANCEL_PREFIX}{order_id}"


def address_key(order_id: str) -> str:
    return f"{ADDRESS_PREFIX}{order_id}"


def _get(key: str) -> dict[str, Any] | None:
    from airflow.sdk import Variable

    value = Variable.get(key, default=None, deserialize_json=True)
    return value if isinstance(value, dict) else None


def cancel_request(order_id: str) -> dict[str, Any] | None:
    """The order's cancel request, if one was made (read from a task or a trigger)."""
    return _get(cancel_key(order_id))


def address_change(order_id: str) -> dict[str, Any] | None:
    """The order's changed shipping address, if it was changed (read from a task)."""
    return _get(address_key(order_id))
