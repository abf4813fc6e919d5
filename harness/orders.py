"""What tests of the order process share: an example order, and the ledger in a comparable shape."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from airflow_order_provider.order_form import EXAMPLE_ORDER as _EXAMPLE

#: The example order of the DAG's trigger form (the provider's own).
EXAMPLE_ORDER: dict[str, Any] = copy.deepcopy(_EXAMPLE)


#: What makes an order wait for approval: a total above the default threshold (100000 minor units).
HIGH_VALUE: dict[str, Any] = {
    "items": [{"sku": "SKU-GRAND-PIANO", "quantity": 1, "unit_price": 250_000}],
    "total_amount": 250_000,
}


def new_order_id(prefix: str = "ord") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def an_order(**changes: Any) -> dict[str, Any]:
    """The example order under a fresh order id, with top-level fields changed."""
    order = copy.deepcopy(EXAMPLE_ORDER)
    order["order_id"] = new_order_id()
    order.update(copy.deepcopy(changes))
    return order


#: Where the provider's default alert notifier emails operations ([order_provider] alert_email).
OPS_EMAIL = "ops@example.com"


def _is_alert(entry: dict[str, Any]) -> bool:
    return entry["operation"] == "email" and entry["details"].get("to") == OPS_EMAIL


def ledger(order_services: Any, order_id: str) -> list[tuple[str, str, str]]:
    """``[(service, operation, status), ...]`` of the order, oldest first; alerts to ops left out."""
    return [
        (e["service"], e["operation"], e["status"]) for e in order_services.audit(order_id) if not _is_alert(e)
    ]


def alerts(order_services: Any, order_id: str) -> list[str]:
    """Subjects of the alerts emailed to operations about the order, oldest first."""
    return [e["details"]["subject"] for e in order_services.audit(order_id) if _is_alert(e)]


#: The stock release and the refund do not wait for each other (the order saga's undo_after): a
#: ledger may show them either way round.
INDEPENDENT_UNDOS = (("inventory", "release", "succeeded"), ("payment", "refund", "succeeded"))


def settled(entries: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The ledger with a release and a refund that end it put in one order (release, refund): they
    run side by side. Anything else, a shipment's cancel before them included, keeps its place."""
    if len(entries) >= 2 and sorted(entries[-2:]) == sorted(INDEPENDENT_UNDOS):
        return [*entries[:-2], *INDEPENDENT_UNDOS]
    return list(entries)


#: The ledger of a completed order: one charge, one reservation, one shipment, one email; nothing undone.
COMPLETED = [
    ("payment", "charge", "succeeded"),
    ("inventory", "reserve", "succeeded"),
    ("shipping", "schedule", "succeeded"),
    ("notification", "email", "succeeded"),
]
