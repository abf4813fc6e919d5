"""Payment service hook: charge, refund, look up."""

from __future__ import annotations

from typing import Any

from airflow_order_provider.hooks.base import OrderServiceHook


class PaymentHook(OrderServiceHook):
    """
    Talks to the payment service.

    :param conn_id: connection to the payment service (default ``order_payment_default``).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "order_payment_default"
    conn_type = "order_payment"
    hook_name = "Order Payment Service"
    service = "payment"
    record_id_field = "payment_id"
    live_statuses = frozenset({"succeeded", "partially_refunded"})
    undone_statuses = frozenset({"refunded"})

    def charge(
        self,
        *,
        order_id: str,
        customer_id: str,
        amount: int,
        currency: str,
        payment_method: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Charge the customer; returns the charge (``payment_id``, ``transaction_ref``...)."""
        return self.call(
            "POST",
            "/payment/charges",
            operation="charge",
            idempotency_key=idempotency_key,
            json={
                "order_id": order_id,
                "customer_id": customer_id,
                "amount": amount,
                "currency": currency,
                "payment_method": payment_method,
            },
        )

    def refund(
        self, *, payment_id: str, reason: str, idempotency_key: str, amount: int | None = None
    ) -> dict[str, Any]:
        """Refund a charge, by default in full."""
        body: dict[str, Any] = {"reason": reason}
        if amount is not None:
            body["amount"] = amount
        return self.call(
            "POST",
            f"/payment/charges/{payment_id}/refund",
            operation="refund",
            idempotency_key=idempotency_key,
            json=body,
        )

    def charges_for_order(self, order_id: str) -> list[dict[str, Any]]:
        """Every charge of the order, oldest first, with its refunds."""
        return self.call("GET", "/payment/charges", operation="find charges", params={"order_id": order_id})[
            "charges"
        ]

    def get_charge(self, payment_id: str) -> dict[str, Any]:
        """The charge with its status (``succeeded``, ``partially_refunded``, ``refunded``) and refunds."""
        return self.call("GET", f"/payment/charges/{payment_id}", operation="get charge")

    def records_for_order(self, order_id: str) -> list[dict[str, Any]]:
        return self.charges_for_order(order_id)

    def get_record(self, record_id: str) -> dict[str, Any]:
        return self.get_charge(record_id)

    def undo(self, record_id: str, *, reason: str, idempotency_key: str) -> dict[str, Any]:
        """Refund what is left of the charge."""
        return self.refund(payment_id=record_id, reason=reason, idempotency_key=idempotency_key)
