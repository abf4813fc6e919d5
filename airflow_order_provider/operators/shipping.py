"""Shipping step and its compensation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.base import OrderCompensationOperator, OrderStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

SHIPMENT_FIELDS = ("shipment_id", "tracking_number", "carrier", "service_level", "estimated_delivery", "status")


class ScheduleShipmentOperator(OrderStepOperator):
    """
    Book the shipment of the reserved goods to the customer's address.

    Pushes ``{"shipment_id", "tracking_number", "carrier", "service_level", "estimated_delivery",
    "status"}``.

    :param order_id: the order. (templated)
    :param reservation_id: the inventory reservation being shipped. (templated)
    :param address: the shipping address; a change sent through the order API
        (:mod:`airflow_order_provider.signals`) wins. (templated)
    :param service_level: ``standard`` or ``express``; ``express`` anyway when the order's ship
        deadline is near. (templated)
    :param conn_id: shipping service connection (default ``order_shipping_default``).
    """

    service = "shipping"
    action = "shipping.schedule"
    template_fields: Sequence[str] = (
        *OrderStepOperator.template_fields, "reservation_id", "address", "service_level")

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

    def call_service(self, context: Context) -> dict[str, Any]:
        from airflow_order_provider.signals import address_change

        address = dict(self.address)
        change = address_change(self.order_id)
        if change:
            address = dict(change["address"])
            self.log.info("Order %s ships to its changed address (changed at %s)", self.order_id,
                          change.get("changed_at"))
        shipment = self.hook.schedule(
            order_id=self.order_id,
            reservation_id=self.reservation_id,
            address=address,
            service_level="express" if self.ship_deadline_near(context) else self.service_level,
            idempotency_key=self.idempotency_key,
        )
        self.log.info(
            "Scheduled shipment %s for order %s, tracking %s",
            shipment["shipment_id"],
            self.order_id,
            shipment.get("tracking_number"),
        )
        return {key: shipment.get(key) for key in SHIPMENT_FIELDS}


class CancelShipmentOperator(OrderCompensationOperator):
    """
    Compensation of :class:`ScheduleShipmentOperator`: cancel a shipment not yet dispatched.

    A dispatched shipment cannot be cancelled: the compensation then fails for good and asks for
    manual intervention, and the compensations after it wait.

    Pushes ``{"shipment_id", "status"}``.

    :param order_id: the order. (templated)
    :param shipment_id: the shipment to cancel; when empty, every shipment of the order not yet
        cancelled. (templated)
    :param reason: why. (templated)
    :param conn_id: shipping service connection (default ``order_shipping_default``).
    """

    service = "shipping"
    action = "shipping.cancel"
    id_field = "shipment_id"
    settled_statuses = frozenset({"cancelled"})
    template_fields: Sequence[str] = (*OrderCompensationOperator.template_fields, "shipment_id")

    def __init__(self, *, shipment_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shipment_id = shipment_id

    def find_for_order(self, order_id: str) -> list[dict[str, Any]]:
        return self.hook.shipments_for_order(order_id)

    def get_record(self, object_id: str) -> dict[str, Any]:
        return self.hook.get_shipment(object_id)

    def undo(self, object_id: str) -> dict[str, Any]:
        cancelled = self.hook.cancel(shipment_id=object_id, reason=self.reason, idempotency_key=self.idempotency_key)
        self.log.info("Cancelled shipment %s of order %s", object_id, self.order_id)
        return {key: cancelled.get(key) for key in ("shipment_id", "status")}

    def execute(self, context: Context) -> dict[str, Any]:
        return self.compensate(self.shipment_id)
