"""Shipping step and its compensation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.base import OrderServiceOperator
from airflow_order_provider.policies import SHIPPING

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.hooks.shipping import ShippingHook

SHIPMENT_FIELDS = ("shipment_id", "tracking_number", "carrier", "service_level", "estimated_delivery", "status")


class _ShippingOperator(OrderServiceOperator):
    policy = SHIPPING

    def _hook_class(self) -> type[ShippingHook]:
        from airflow_order_provider.hooks.shipping import ShippingHook

        return ShippingHook


class ScheduleShipmentOperator(_ShippingOperator):
    """
    Book the shipment of the reserved goods to the customer's address.

    Pushes ``{"shipment_id", "tracking_number", "carrier", "service_level", "estimated_delivery",
    "status"}``.

    :param order_id: the order. (templated)
    :param reservation_id: the inventory reservation being shipped. (templated)
    :param address: the shipping address. (templated)
    :param service_level: ``standard`` or ``express``. (templated)
    :param conn_id: shipping service connection (default ``order_shipping_default``).
    """

    action = "shipping.schedule"
    template_fields: Sequence[str] = ("order_id", "reservation_id", "address", "service_level")

    def __init__(
        self,
        *,
        reservation_id: str,
        address: dict[str, Any] | str,
        service_level: str = "standard",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reservation_id = reservation_id
        self.address = address
        self.service_level = service_level

    def execute(self, context: Context) -> dict[str, Any]:
        shipment = self.hook.schedule(
            order_id=self.order_id,
            reservation_id=self.reservation_id,
            address=dict(self.address),
            service_level=self.service_level,
            idempotency_key=self.idempotency_key,
        )
        self.log.info(
            "Scheduled shipment %s for order %s, tracking %s",
            shipment["shipment_id"],
            self.order_id,
            shipment.get("tracking_number"),
        )
        return {key: shipment.get(key) for key in SHIPMENT_FIELDS}


class CancelShipmentOperator(_ShippingOperator):
    """
    Compensation of :class:`ScheduleShipmentOperator`: cancel a shipment not yet dispatched.

    Pushes ``{"shipment_id", "status"}``.

    :param order_id: the order. (templated)
    :param shipment_id: the shipment to cancel. (templated)
    :param reason: why. (templated)
    :param conn_id: shipping service connection (default ``order_shipping_default``).
    """

    action = "shipping.cancel"
    template_fields: Sequence[str] = ("order_id", "shipment_id", "reason")
    ui_color = "#fdecea"

    def __init__(self, *, shipment_id: str, reason: str = "order cancelled", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shipment_id = shipment_id
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        cancelled = self.hook.cancel(
            shipment_id=self.shipment_id, reason=self.reason, idempotency_key=self.idempotency_key
        )
        self.log.info("Cancelled shipment %s of order %s", self.shipment_id, self.order_id)
        return {key: cancelled.get(key) for key in ("shipment_id", "status")}
