"""Confirmation step: tell the customer the order is on its way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.base import OrderStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


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

    Pushes ``{"message_id", "status"}``.

    :param order_id: the order. (templated)
    :param customer_email: where to send it. (templated)
    :param items: the order lines. (templated)
    :param total_amount: amount charged, in minor units. (templated)
    :param currency: ISO 4217 code. (templated)
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
        customer_email: str,
        items: list[dict[str, Any]] | str,
        total_amount: int | str,
        currency: str,
        shipment: dict[str, Any] | str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.customer_email = customer_email
        self.items = items
        self.total_amount = total_amount
        self.currency = currency
        self.shipment = shipment

    def call_service(self, context: Context) -> dict[str, Any]:
        shipment = dict(self.shipment)
        subject, body = confirmation_email(
            order_id=self.order_id,
            items=list(self.items),
            total_amount=int(self.total_amount),
            currency=self.currency,
            tracking_number=shipment["tracking_number"],
            carrier=shipment.get("carrier"),
            estimated_delivery=shipment.get("estimated_delivery"),
        )
        message = self.hook.send_email(
            order_id=self.order_id,
            to=self.customer_email,
            subject=subject,
            body=body,
            idempotency_key=self.idempotency_key,
        )
        self.log.info("Queued confirmation %s for order %s", message["message_id"], self.order_id)
        return {key: message.get(key) for key in ("message_id", "status")}
