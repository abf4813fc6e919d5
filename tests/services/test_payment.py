"""Payment: test values, idempotent replay, key reuse, concurrency, refunds."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.services.support import (
    charge_body,
    error_type,
    ledger,
    new_key,
    new_order,
    reservation_body,
    run_concurrently,
)


def charge(server, order_id, key=None, **changes):
    return server.post_response(
        "/payment/charges", charge_body(order_id, **changes), idempotency_key=key or new_key()
    )


def test_pm_card_ok_succeeds(order_services):
    order_id = new_order()
    key = new_key()
    response = charge(order_services, order_id, key)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "payment_id",
        "order_id",
        "customer_id",
        "amount",
        "currency",
        "status",
        "refunded_amount",
        "transaction_ref",
        "processed_at",
    }
    assert body["payment_id"].startswith("pay_")
    assert body["order_id"] == order_id
    assert body["customer_id"] == "cust-42"
    assert body["amount"] == 4999
    assert body["currency"] == "EUR"
    assert body["status"] == "succeeded"
    assert body["refunded_amount"] == 0
    assert body["transaction_ref"]
    assert datetime.fromisoformat(body["processed_at"]).tzinfo is not None

    [entry] = order_services.audit(order_id)
    assert entry["service"] == "payment"
    assert entry["operation"] == "charge"
    assert entry["status"] == "succeeded"
    assert entry["idempotency_key"] == key
    assert entry["details"]["payment_id"] == body["payment_id"]
    assert isinstance(entry["id"], int)
    created = datetime.fromisoformat(entry["created_at"])
    assert created.utcoffset().total_seconds() == 0
    assert "." in entry["created_at"]  # microseconds

    fetched = order_services.get_response(f"/payment/charges/{body['payment_id']}")
    assert fetched.status_code == 200
    assert fetched.json() == {**body, "refunds": []}


@pytest.mark.parametrize(
    ("payment_method", "expected"),
    [
        ("pm_card_declined", "PaymentDeclinedError"),
        ("pm_card_fraud", "FraudDetectedError"),
        ("pm_card_insufficient_funds", "InsufficientFundsError"),
        ("pm_card_expired", "CardExpiredError"),
    ],
)
def test_refused_cards_are_402_and_audited_as_failed(order_services, payment_method, expected):
    order_id = new_order()
    key = new_key()
    response = charge(order_services, order_id, key, payment_method=payment_method)
    assert response.status_code == 402
    assert error_type(response) == expected

    replay = charge(order_services, order_id, key, payment_method=payment_method)
    assert (replay.status_code, replay.json()) == (402, response.json())

    [entry] = order_services.audit(order_id)
    assert (entry["operation"], entry["status"]) == ("charge", "failed")
    assert entry["details"]["error_type"] == expected


def test_replay_returns_the_first_response_and_changes_nothing(order_services):
    order_id = new_order()
    key = new_key()
    first = charge(order_services, order_id, key)
    second = charge(order_services, order_id, key)
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert len(order_services.audit(order_id)) == 1


def test_same_key_with_another_body_is_409(order_services):
    order_id = new_order()
    key = new_key()
    assert charge(order_services, order_id, key).status_code == 201
    reused = charge(order_services, order_id, key, amount=1)
    assert reused.status_code == 409
    assert error_type(reused) == "IdempotencyKeyReusedError"
    assert len(order_services.audit(order_id)) == 1
    # ... also on another endpoint of the same service
    other = order_services.post_response(
        "/payment/charges/pay_nope/refund", {"reason": "x"}, idempotency_key=key
    )
    assert other.status_code == 409
    assert error_type(other) == "IdempotencyKeyReusedError"


def test_keys_are_scoped_per_service(order_services):
    order_id = new_order()
    key = new_key()
    assert charge(order_services, order_id, key).status_code == 201
    reserved = order_services.post_response(
        "/inventory/reservations", reservation_body(order_id), idempotency_key=key
    )
    assert reserved.status_code == 201
    assert ledger(order_services.audit(order_id)) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
    ]


def test_concurrent_repeats_charge_exactly_once(order_services):
    order_id = new_order()
    key = new_key()
    responses = run_concurrently(20, lambda _i: charge(order_services, order_id, key))
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in responses) == 1
    entries = order_services.audit(order_id)
    assert ledger(entries) == [("payment", "charge", "succeeded")]
    assert entries[0]["details"]["payment_id"] == responses[0].json()["payment_id"]


def test_refund_flow(order_services):
    order_id = new_order()
    payment = charge(order_services, order_id).json()
    path = f"/payment/charges/{payment['payment_id']}/refund"
    key = new_key()
    refund = order_services.post_response(path, {"reason": "order cancelled"}, idempotency_key=key)
    assert refund.status_code == 201
    body = refund.json()
    assert set(body) == {"refund_id", "payment_id", "order_id", "amount", "status", "reason"}
    assert body["refund_id"].startswith("ref_")
    assert body["payment_id"] == payment["payment_id"]
    assert body["order_id"] == order_id
    assert body["amount"] == payment["amount"]
    assert body["status"] == "succeeded"
    assert body["reason"] == "order cancelled"

    replay = order_services.post_response(path, {"reason": "order cancelled"}, idempotency_key=key)
    assert (replay.status_code, replay.content) == (201, refund.content)

    again = order_services.post_response(path, {"reason": "order cancelled"}, idempotency_key=new_key())
    assert again.status_code == 409
    assert error_type(again) == "InvalidStateError"

    fetched = order_services.get_response(f"/payment/charges/{payment['payment_id']}").json()
    assert fetched["status"] == "refunded"
    assert fetched["refunds"] == [body]

    entries = order_services.audit(order_id)
    assert ledger(entries) == [
        ("payment", "charge", "succeeded"),
        ("payment", "refund", "succeeded"),
        ("payment", "refund", "failed"),
    ]
    assert entries[1]["details"]["refund_id"] == body["refund_id"]
    assert entries[2]["details"]["error_type"] == "InvalidStateError"
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)


def test_partial_refund_and_too_large_refund(order_services):
    order_id = new_order()
    payment = charge(order_services, order_id, amount=1000).json()
    path = f"/payment/charges/{payment['payment_id']}/refund"
    too_much = order_services.post_response(path, {"reason": "r", "amount": 1001}, idempotency_key=new_key())
    assert too_much.status_code == 422
    assert error_type(too_much) == "ValidationError"
    assert "amount" in too_much.json()["error"]["message"]
    partial = order_services.post_response(path, {"reason": "r", "amount": 400}, idempotency_key=new_key())
    assert partial.status_code == 201
    assert partial.json()["amount"] == 400


def test_concurrent_refunds_with_different_keys_refund_once(order_services):
    order_id = new_order()
    payment = charge(order_services, order_id).json()
    path = f"/payment/charges/{payment['payment_id']}/refund"
    responses = run_concurrently(
        10, lambda i: order_services.post_response(path, {"reason": "r"}, idempotency_key=new_key())
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9
    assert (
        len(order_services.get_response(f"/payment/charges/{payment['payment_id']}").json()["refunds"]) == 1
    )


def test_unknown_payment_is_404(order_services):
    missing = order_services.get_response("/payment/charges/pay_doesnotexist")
    assert missing.status_code == 404
    assert error_type(missing) == "PaymentNotFoundError"
    refund = order_services.post_response(
        "/payment/charges/pay_doesnotexist/refund", {"reason": "r"}, idempotency_key=new_key()
    )
    assert refund.status_code == 404
    assert error_type(refund) == "PaymentNotFoundError"
