"""Confirmation step: tell the customer the order is on its way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.step import OrderStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.models import Order


#: ISO 4217 currencies without minor units: an amount of 500 JPY is 500 yen, not 5.00.
ZERO_DECIMAL_CURRENCIES = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
                                     "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"})


def format_amount(minor_units: int, currency: str) -> str:
    """``2500, "USD"`` -> ``"25.00 USD"``."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return f"{minor_units} {currency}"
    return f"{minor_units // 100}.{minor_units % 100:02d} {currency}"


def confirmation_email(
    *,
    order_id: str,
    items: list[dict[str, Any]],
    total_amount: int,
    currency: str,
    tracking_number: str,
    carrier: str | None = None,
    estimated_delivery: str | None = None,
) -> tuple[str, str]:
    """Subject and plain-text body of the order confirmation."""
    lines = [f"Thank you for your order {order_id}.", "", "Items:"]
    for item in items:
        lines.append(
            f"  {item['quantity']} x {item['sku']} at {format_amount(int(item['unit_price']), currency)}"
        )
    lines += ["", f"Total charged: {format_amount(int(total_amount), currency)}", ""]
    lines.append(f"Tracking number: {tracking_number}" + (f" ({carrier})" if carrier else ""))
    if estimated_delivery:
        lines.append(f"Estimated delivery: {estimated_delivery}")
    return f"Your order {order_id} is confirmed", "\n".join(lines) + "\n"


class SendOrderConfirmationOperator(OrderStepOperator):
    """
    Email the customer the order confirmation with its tracking number.

    The goods are with the carrier by then: a cancel no longer stops the email, and the workflow
    clock no longer applies (nothing is left to undo). The shipment must still be in effect.

    Pushes ``{"message_id", "status", "completed_at"}``.

    :param order_id: the order. (templated)
    :param customer_email: where to send it; default the order's. (templated)
    :param items: the order lines; default the order's. (templated)
    :param total_amount: amount charged, in minor units; default the order's. (templated)
    :param currency: ISO 4217 code; default the order's. (templated)
    :param shipment: the shipping step's result (``tracking_number``, ``carrier``,
        ``estimated_delivery``). (templated)
    :param conn_id: notification service connection (default ``order_notification_default``).
    """

    service = "notification"
    action = "notification.confirmation"
    template_fields: Sequence[str] = (
        *OrderStepOperator.template_fields, "customer_email", "items", "total_amount", "currency", "shipment")

    def __init__(
        self,
        *,
        customer_email: str | None = None,
        items: list[dict[str, Any]] | str | None = None,
        total_amount: int | str | None = None,
        currency: str | None = None,
        shipment: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.customer_email = customer_email
        self.items = items
        self.total_amount = total_amount
        self.currency = currency
        self.shipment = shipment

    def take_order(self, order: Order) -> None:
        super().take_order(order)
        self.customer_email = self.customer_email or order.customer_email
        self.items = self.items or [item.model_dump(mode="json") for item in order.items]
        self.total_amount = self.total_amount if self.total_amount not in (None, "") else order.total_amount
        self.currency = self.currency or order.currency

    def checkpoint(self, context: Context) -> Any:
        """After the pickup nothing stops the confirmation: no cancel, no workflow clock."""
        from airflow_order_provider.saga.checkpoint import Checkpoint

        return Checkpoint(saga_id=str(self.order_id), step=self.task_id, read_cancel=lambda _: None)

    def adoptable(self, live: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Only a message to the customer can be the confirmation (not an alert to operations)."""
        return [message for message in live if message.get("to") == self.customer_email]

    def call_service(self, context: Context) -> dict[str, Any]:
        shipment = dict(self.shipment)
        subject, body = confirmation_email(
            order_id=str(self.order_id),
            items=list(self.items),
            total_amount=int(self.total_amount),
            currency=str(self.currency),
            tracking_number=shipment["tracking_number"],
            carrier=shipment.get("carrier"),
            estimated_delivery=shipment.get("estimated_delivery"),
        )
        message = self.call_idempotent(
            lambda: self.hook.send_email(
                order_id=str(self.order_id),
                to=str(self.customer_email),
                subject=subject,
                body=body,
                idempotency_key=self.idempotency_key,
            )
        )
        self.log.info("Queued confirmation %s for order %s", message["message_id"], self.order_id)
        return {key: message.get(key) for key in ("message_id", "status")}
