"""Payment step and its compensation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.compensation import OrderCompensationOperator
from airflow_order_provider.operators.step import OrderStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.models import Order

CHARGE_FIELDS = ("payment_id", "amount", "currency", "status", "transaction_ref")


class ProcessPaymentOperator(OrderStepOperator):
    """
    Charge the customer for the order.

    Pushes ``{"payment_id", "amount", "currency", "status", "transaction_ref", "completed_at"}``.

    :param order_id: the order. (templated)
    :param customer_id: who pays; default the order's. (templated)
    :param amount: amount in minor units; default the order's total. (templated)
    :param currency: ISO 4217 code; default the order's. (templated)
    :param payment_method: the customer's payment method; default the order's. (templated)
    :param conn_id: payment service connection (default ``order_payment_default``).
    """

    service = "payment"
    action = "payment.charge"
    template_fields: Sequence[str] = (
        *OrderStepOperator.template_fields, "customer_id", "amount", "currency", "payment_method")

    def __init__(
        self,
        *,
        customer_id: str | None = None,
        amount: int | str | None = None,
        currency: str | None = None,
        payment_method: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.customer_id = customer_id
        self.amount = amount
        self.currency = currency
        self.payment_method = payment_method

    def take_order(self, order: Order) -> None:
        super().take_order(order)
        self.customer_id = self.customer_id or order.customer_id
        self.amount = self.amount if self.amount not in (None, "") else order.total_amount
        self.currency = self.currency or order.currency
        self.payment_method = self.payment_method or order.payment_method

    def call_service(self, context: Context) -> dict[str, Any]:
        charge = self.call_idempotent(
            lambda: self.hook.charge(
                order_id=str(self.order_id),
                customer_id=str(self.customer_id),
                amount=int(self.amount),
                currency=str(self.currency),
                payment_method=str(self.payment_method),
                idempotency_key=self.idempotency_key,
            )
        )
        self.log.info("Charged %s %s for order %s: %s", charge["amount"], charge["currency"],
                      self.order_id, charge["payment_id"])
        return {key: charge.get(key) for key in CHARGE_FIELDS}


class RefundPaymentOperator(OrderCompensationOperator):
    """
    Compensation of :class:`ProcessPaymentOperator`: refund what is left of the order's charge.

    Pushes ``{"refund_id", "payment_id", "amount", "status"}``.

    :param order_id: the order. (templated)
    :param payment_id: the charge to refund; when empty, every charge of the order still in
        effect (not fully refunded). (templated)
    :param reason: why, recorded with the refund. (templated)
    :param conn_id: payment service connection (default ``order_payment_default``).
    """

    service = "payment"
    action = "payment.refund"
    id_field = "payment_id"
    result_fields = ("refund_id", "payment_id", "amount", "status")
    template_fields: Sequence[str] = (*OrderCompensationOperator.template_fields, "payment_id")
