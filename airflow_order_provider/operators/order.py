"""The order's first and last tasks: validate the input, record the outcome."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_order_provider.models import parse_order

if TYPE_CHECKING:
    from airflow.sdk import Context


class ValidateOrderOperator(BaseOperator):
    """
    Check the order before any service is called, and push it, normalized, for the steps.

    A bad order fails this task at once (no retry) with a message that names every bad field.

    :param order: the order; defaults to the run's conf. (templated)
    """

    template_fields: Sequence[str] = ("order",)
    ui_color = "#f0f0f0"

    def __init__(self, *, order: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.order = order

    def execute(self, context: Context) -> dict[str, Any]:
        data = self.order if self.order is not None else context["dag_run"].conf
        order = parse_order(data)
        self.log.info(
            "Order %s is valid: %d line(s), %d %s, %s customer",
            order.order_id,
            len(order.items),
            order.total_amount,
            order.currency,
            order.customer_tier,
        )
        result = order.model_dump(mode="json")
        result["service_level"] = order.service_level
        return result


class CompleteOrderOperator(BaseOperator):
    """
    Record the order's result: what was charged, reserved and shipped.

    Its XCom is the order's result: ``{"order_id", "status": "completed", "payment_id",
    "reservation_id", "shipment_id", "tracking_number", ...}``.

    :param order_id: the order. (templated)
    :param payment: the payment step's result. (templated)
    :param reservation: the inventory step's result. (templated)
    :param shipment: the shipping step's result. (templated)
    :param confirmation: the confirmation step's result, if it was sent. (templated)
    """

    template_fields: Sequence[str] = ("order_id", "payment", "reservation", "shipment", "confirmation")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        order_id: str,
        payment: dict[str, Any] | str,
        reservation: dict[str, Any] | str,
        shipment: dict[str, Any] | str,
        confirmation: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.order_id = order_id
        self.payment = payment
        self.reservation = reservation
        self.shipment = shipment
        self.confirmation = confirmation

    def execute(self, context: Context) -> dict[str, Any]:
        payment, reservation, shipment = dict(self.payment), dict(self.reservation), dict(self.shipment)
        confirmation = dict(self.confirmation) if self.confirmation else {}
        result = {
            "order_id": self.order_id,
            "status": "completed",
            "payment_id": payment["payment_id"],
            "amount": payment.get("amount"),
            "currency": payment.get("currency"),
            "reservation_id": reservation["reservation_id"],
            "shipment_id": shipment["shipment_id"],
            "tracking_number": shipment["tracking_number"],
            "carrier": shipment.get("carrier"),
            "estimated_delivery": shipment.get("estimated_delivery"),
            "confirmation_message_id": confirmation.get("message_id"),
        }
        self.log.info("Order %s completed: %s", self.order_id, result)
        return result
