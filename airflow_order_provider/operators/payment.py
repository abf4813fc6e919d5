"""Payment step and its compensation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.base import OrderCompensationOperator, OrderStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class ProcessPaymentOperator(OrderStepOperator):
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

    service = "payment"
    action = "payment.charge"
    template_fields: Sequence[str] = (
        *OrderStepOperator.template_fields, "customer_id", "amount", "currency", "payment_method")

    def __init__(
        self, *, customer_id: str, amount: int | str, currency: str, payment_method: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.customer_id = customer_id
        self.amount = amount
        self.currency = currency
        self.payment_method = payment_method

    def call_service(self, context: Context) -> dict[str, Any]:
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


class RefundPaymentOperator(OrderCompensationOperator):
    """
    Compensation of :class:`ProcessPaymentOperator`: refund the charge in full.

    Pushes ``{"refund_id", "payment_id", "amount", "status"}``.

    :param order_id: the order. (templated)
    :param payment_id: the charge to refund; when empty, every charge of the order not yet
        refunded. (templated)
    :param reason: why, recorded with the refund. (templated)
    :param conn_id: payment service connection (default ``order_payment_default``).
    """

    service = "payment"
    action = "payment.refund"
    id_field = "payment_id"
    settled_statuses = frozenset({"refunded"})
    template_fields: Sequence[str] = (*OrderCompensationOperator.template_fields, "payment_id")

    def __init__(self, *, payment_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.payment_id = payment_id

    def find_for_order(self, order_id: str) -> list[dict[str, Any]]:
        return self.hook.charges_for_order(order_id)

    def get_record(self, object_id: str) -> dict[str, Any]:
        return self.hook.get_charge(object_id)

    def undo(self, object_id: str) -> dict[str, Any]:
        refund = self.hook.refund(payment_id=object_id, reason=self.reason, idempotency_key=self.idempotency_key)
        self.log.info("Refunded payment %s of order %s: %s", object_id, self.order_id, refund["refund_id"])
        return {key: refund.get(key) for key in ("refund_id", "payment_id", "amount", "status")}

    def execute(self, context: Context) -> dict[str, Any]:
        return self.compensate(self.payment_id)
