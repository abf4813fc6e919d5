"""Payment step and its compensation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.base import OrderServiceOperator
from airflow_order_provider.policies import PAYMENT

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.hooks.payment import PaymentHook


class _PaymentOperator(OrderServiceOperator):
    policy = PAYMENT

    def _hook_class(self) -> type[PaymentHook]:
        from airflow_order_provider.hooks.payment import PaymentHook

        return PaymentHook


class ProcessPaymentOperator(_PaymentOperator):
    """
    Charge the customer for the order.

    Pushes ``{"payment_id", "amount", "currency", "status", "transaction_ref"}``.

    :param order_id: the order. (templated)
    :param customer_id: who pays. (templated)
    :param amount: amount in minor units. (templated)
    :param currency: ISO 4217 code. (templated)
    :param payment_method: the customer's payment method. (templated)
    :param conn_id: payment service connection (default ``order_payment_default``).
    """

    action = "payment.charge"
    template_fields: Sequence[str] = ("order_id", "customer_id", "amount", "currency", "payment_method")

    def __init__(
        self, *, customer_id: str, amount: int | str, currency: str, payment_method: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.customer_id = customer_id
        self.amount = amount
        self.currency = currency
        self.payment_method = payment_method

    def execute(self, context: Context) -> dict[str, Any]:
        charge = self.hook.charge(
            order_id=self.order_id,
            customer_id=self.customer_id,
            amount=int(self.amount),
            currency=self.currency,
            payment_method=self.payment_method,
            idempotency_key=self.idempotency_key,
        )
        self.log.info("Charged %s %s for order %s: %s", charge["amount"], charge["currency"],
                      self.order_id, charge["payment_id"])
        return {key: charge.get(key) for key in ("payment_id", "amount", "currency", "status", "transaction_ref")}


class RefundPaymentOperator(_PaymentOperator):
    """
    Compensation of :class:`ProcessPaymentOperator`: refund the charge in full.

    Pushes ``{"refund_id", "payment_id", "amount", "status"}``.

    :param order_id: the order. (templated)
    :param payment_id: the charge to refund. (templated)
    :param reason: why, recorded with the refund. (templated)
    :param conn_id: payment service connection (default ``order_payment_default``).
    """

    action = "payment.refund"
    template_fields: Sequence[str] = ("order_id", "payment_id", "reason")
    ui_color = "#fdecea"

    def __init__(self, *, payment_id: str, reason: str = "order cancelled", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.payment_id = payment_id
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        refund = self.hook.refund(
            payment_id=self.payment_id, reason=self.reason, idempotency_key=self.idempotency_key
        )
        self.log.info("Refunded payment %s of order %s: %s", self.payment_id, self.order_id, refund["refund_id"])
        return {key: refund.get(key) for key in ("refund_id", "payment_id", "amount", "status")}
