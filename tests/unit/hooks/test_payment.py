from __future__ import annotations

import pytest

from airflow_order_provider.exceptions import (
    CardExpiredError,
    FraudDetectedError,
    IdempotencyKeyReusedError,
    InsufficientFundsError,
    PaymentDeclinedError,
    PaymentNotFoundError,
)
from airflow_order_provider.hooks.payment import PaymentHook
from harness.orders import ledger


def charge(order_id, payment_method="pm_card_ok", amount=2500, key=None):
    return PaymentHook().charge(
        order_id=order_id, customer_id="cus-42", amount=amount, currency="USD",
        payment_method=payment_method, idempotency_key=key or f"{order_id}:payment.charge",
    )


def test_charge_and_refund(service_connections, order_id):
    paid = charge(order_id)
    assert paid["status"] == "succeeded" and paid["amount"] == 2500
    refund = PaymentHook().refund(payment_id=paid["payment_id"], reason="test", idempotency_key=f"{order_id}:r")
    assert refund["status"] == "succeeded" and refund["amount"] == 2500
    assert PaymentHook().get_charge(paid["payment_id"])["status"] == "refunded"
    assert ledger(service_connections, order_id) == [
        ("payment", "charge", "succeeded"),
        ("payment", "refund", "succeeded"),
    ]


def test_repeating_a_charge_with_its_key_charges_once(service_connections, order_id):
    first, second = charge(order_id), charge(order_id)
    assert first == second
    assert ledger(service_connections, order_id) == [("payment", "charge", "succeeded")]


def test_same_key_other_amount_is_refused(service_connections, order_id):
    charge(order_id)
    with pytest.raises(IdempotencyKeyReusedError):
        charge(order_id, amount=9999)
    assert ledger(service_connections, order_id) == [("payment", "charge", "succeeded")]


@pytest.mark.parametrize(
    ("method", "error"),
    [
        ("pm_card_declined", PaymentDeclinedError),
        ("pm_card_fraud", FraudDetectedError),
        ("pm_card_insufficient_funds", InsufficientFundsError),
        ("pm_card_expired", CardExpiredError),
    ],
)
def test_refused_cards_raise_their_own_error(service_connections, order_id, method, error):
    with pytest.raises(error) as raised:
        charge(order_id, payment_method=method)
    assert raised.value.status_code == 402
    assert raised.value.error_type == error.__name__
    assert ledger(service_connections, order_id) == [("payment", "charge", "failed")]


def test_unknown_charge(service_connections):
    with pytest.raises(PaymentNotFoundError):
        PaymentHook().get_charge("pay_does_not_exist")
