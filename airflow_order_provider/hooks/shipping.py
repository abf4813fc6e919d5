"""Shipping service hook: schedule, cancel, status."""

from __future__ import annotations

from typing import Any

from airflow_order_provider.hooks.base import OrderServiceHook


class ShippingHook(OrderServiceHook):
    """
    Talks to the shipping service.

    :param conn_id: connection to the shipping service (default ``order_shipping_default``).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "order_shipping_default"
    conn_type = "order_shipping"
    hook_name = "Order Shipping Service"
    service = "shipping"
    record_id_field = "shipment_id"
    live_statuses = frozenset({"scheduled", "dispatched"})
    undone_statuses = frozenset({"cancelled"})

    def schedule(
        self,
        *,
        order_id: str,
        reservation_id: str,
        address: dict[str, Any],
        service_level: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Book the shipment of a reservation; returns ``shipment_id``, ``tracking_number``..."""
        return self.call(
            "POST",
            "/shipping/shipments",
            operation="schedule",
            idempotency_key=idempotency_key,
            json={
                "order_id": order_id,
                "reservation_id": reservation_id,
                "address": address,
                "service_level": service_level,
            },
        )

    def cancel(self, *, shipment_id: str, reason: str, idempotency_key: str) -> dict[str, Any]:
        """Cancel a shipment that has not been dispatched."""
        return self.call(
            "POST",
            f"/shipping/shipments/{shipment_id}/cancel",
            operation="cancel",
            idempotency_key=idempotency_key,
            json={"reason": reason},
        )

    def shipments_for_order(self, order_id: str) -> list[dict[str, Any]]:
        """Every shipment of the order, oldest first."""
        return self.call(
            "GET", "/shipping/shipments", operation="find shipments", params={"order_id": order_id}
        )["shipments"]

    def get_shipment(self, shipment_id: str) -> dict[str, Any]:
        """The shipment and its status: ``scheduled``, ``dispatched`` or ``cancelled``."""
        return self.call("GET", f"/shipping/shipments/{shipment_id}", operation="get shipment")

    def records_for_order(self, order_id: str) -> list[dict[str, Any]]:
        return self.shipments_for_order(order_id)

    def get_record(self, record_id: str) -> dict[str, Any]:
        return self.get_shipment(record_id)

    def undo(self, record_id: str, *, reason: str, idempotency_key: str) -> dict[str, Any]:
        """Cancel the shipment (refused once the carrier has it)."""
        return self.cancel(shipment_id=record_id, reason=reason, idempotency_key=idempotency_key)

    async def async_get_shipment(self, shipment_id: str) -> dict[str, Any]:
        """The asynchronous form of :meth:`get_shipment`, for triggers: same answer, same errors."""
        return await self.async_call("GET", f"/shipping/shipments/{shipment_id}", operation="get shipment")
