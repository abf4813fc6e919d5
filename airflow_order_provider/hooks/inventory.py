"""Inventory service hook: reserve, release, stock levels."""

from __future__ import annotations

from typing import Any

from airflow_order_provider.hooks.base import OrderServiceHook


class InventoryHook(OrderServiceHook):
    """
    Talks to the inventory service.

    :param conn_id: connection to the inventory service (default ``order_inventory_default``).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "order_inventory_default"
    conn_type = "order_inventory"
    hook_name = "Order Inventory Service"
    service = "inventory"
    record_id_field = "reservation_id"
    live_statuses = frozenset({"held", "committed"})
    undone_statuses = frozenset({"released", "expired"})

    def reserve(
        self,
        *,
        order_id: str,
        items: list[dict[str, Any]],
        region: str,
        idempotency_key: str,
        priority: str = "normal",
    ) -> dict[str, Any]:
        """Hold stock for every line of the order, all or nothing; returns the reservation."""
        return self.call(
            "POST",
            "/inventory/reservations",
            operation="reserve",
            idempotency_key=idempotency_key,
            json={
                "order_id": order_id,
                "items": [{"sku": item["sku"], "quantity": item["quantity"]} for item in items],
                "region": region,
                "priority": priority,
            },
        )

    def release(self, *, reservation_id: str, reason: str, idempotency_key: str) -> dict[str, Any]:
        """Give the reserved stock back."""
        return self.call(
            "POST",
            f"/inventory/reservations/{reservation_id}/release",
            operation="release",
            idempotency_key=idempotency_key,
            json={"reason": reason},
        )

    def reservations_for_order(self, order_id: str) -> list[dict[str, Any]]:
        """Every reservation of the order, oldest first."""
        return self.call(
            "GET", "/inventory/reservations", operation="find reservations", params={"order_id": order_id}
        )["reservations"]

    def get_reservation(self, reservation_id: str) -> dict[str, Any]:
        return self.call("GET", f"/inventory/reservations/{reservation_id}", operation="get reservation")

    def records_for_order(self, order_id: str) -> list[dict[str, Any]]:
        return self.reservations_for_order(order_id)

    def get_record(self, record_id: str) -> dict[str, Any]:
        return self.get_reservation(record_id)

    def undo(self, record_id: str, *, reason: str, idempotency_key: str) -> dict[str, Any]:
        """Release the held stock (refused while a shipment holds it: cancel that first)."""
        return self.release(reservation_id=record_id, reason=reason, idempotency_key=idempotency_key)

    def get_stock(self, sku: str) -> dict[str, Any]:
        """``on_hand``, ``reserved`` and ``available`` units of a SKU."""
        return self.call("GET", f"/inventory/stock/{sku}", operation="get stock")
