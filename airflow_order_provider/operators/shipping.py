"""Shipping step and its compensation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.compensation import OrderCompensationOperator
from airflow_order_provider.operators.step import OrderStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.models import Order

SHIPMENT_FIELDS = ("shipment_id", "tracking_number", "carrier", "service_level", "estimated_delivery", "status")


class ScheduleShipmentOperator(OrderStepOperator):
    """
    Book the shipment of the reserved goods to the customer's address.

    Every try sends the same request: the address can no longer change once the step has started
    (the order API refuses it, atomically with the step's start), and the service level is decided
    from when the step became ready.

    Pushes ``{"shipment_id", "tracking_number", "carrier", "service_level", "estimated_delivery",
    "status", "completed_at"}``.

    :param order_id: the order. (templated)
    :param reservation_id: the inventory reservation being shipped. (templated)
    :param address: the shipping address; default the order's; a change sent through the order
        API (:mod:`airflow_order_provider.signals`) wins. (templated)
    :param service_level: ``standard`` or ``express``; default the order's (premium customers ship
        express); ``express`` anyway when the order's ship deadline was near. (templated)
    :param conn_id: shipping service connection (default ``order_shipping_default``).
    """

    service = "shipping"
    action = "shipping.schedule"
    template_fields: Sequence[str] = (
        *OrderStepOperator.template_fields, "reservation_id", "address", "service_level")

    def __init__(
        self,
        *,
        reservation_id: str | None = None,
        address: dict[str, Any] | str | None = None,
        service_level: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reservation_id = reservation_id
        self.address = address
        self.service_level = service_level

    def take_order(self, order: Order) -> None:
        super().take_order(order)
        self.address = self.address or order.shipping_address.model_dump(mode="json")
        self.service_level = self.service_level or order.service_level

    def call_service(self, context: Context) -> dict[str, Any]:
        from airflow_order_provider.signals import address_change

        address = dict(self.address)
        change = address_change(str(self.order_id))
        if change:
            address = dict(change["address"])
            self.log.info("Order %s ships to its changed address (changed at %s)", self.order_id,
                          change.get("changed_at"))
        near = self.ship_deadline_near(context, self.ready_at(context))
        shipment = self.call_idempotent(
            lambda: self.hook.schedule(
                order_id=str(self.order_id),
                reservation_id=str(self.reservation_id),
                address=address,
                service_level="express" if near else (self.service_level or "standard"),
                idempotency_key=self.idempotency_key,
            )
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

    A dispatched shipment cannot be cancelled: the compensation then fails for good
    (:class:`~airflow_order_provider.exceptions.CompensationImpossibleError`) and asks for manual
    intervention, and the compensations after it wait.

    Pushes ``{"shipment_id", "status"}``.

    :param order_id: the order. (templated)
    :param shipment_id: the shipment to cancel; when empty, every shipment of the order still in
        effect. (templated)
    :param reason: why. (templated)
    :param conn_id: shipping service connection (default ``order_shipping_default``).
    """

    service = "shipping"
    action = "shipping.cancel"
    id_field = "shipment_id"
    result_fields = ("shipment_id", "status")
    template_fields: Sequence[str] = (*OrderCompensationOperator.template_fields, "shipment_id")
