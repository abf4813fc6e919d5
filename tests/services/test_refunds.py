"""A charge keeps its refunded amount: partial refunds, then a full refund refunds the rest."""

from __future__ import annotations

from tests.services.support import (
    charge_body,
    error_type,
    ledger,
    new_key,
    new_order,
    run_concurrently,
)


def charge(server, order_id, amount=1000):
    response = server.post_response(
        "/payment/charges", charge_body(order_id, amount=amount), idempotency_key=new_key()
    )
    assert response.status_code == 201, response.text
    return response.json()


def refund(server, payment_id, amount=None, key=None):
    body = {"reason": "partial return"} if amount is None else {"reason": "partial return", "amount": amount}
    return server.post_response(
        f"/payment/charges/{payment_id}/refund", body, idempotency_key=key or new_key()
    )


def test_a_new_charge_has_nothing_refunded(order_services):
    payment = charge(order_services, new_order())
    assert payment["refunded_amount"] == 0
    assert order_services.get(f"/payment/charges/{payment['payment_id']}")["refunded_amount"] == 0


def test_partial_refunds_then_a_full_refund_refunds_the_rest(order_services):
    server = order_services
    order_id = new_order()
    payment_id = charge(server, order_id, amount=1000)["payment_id"]

    first = refund(server, payment_id, amount=400)
    assert first.status_code == 201
    assert first.json()["amount"] == 400
    fetched = server.get(f"/payment/charges/{payment_id}")
    assert (fetched["status"], fetched["refunded_amount"], fetched["amount"]) == (
        "partially_refunded",
        400,
        1000,
    )

    second = refund(server, payment_id, amount=250)
    assert second.status_code == 201
    assert server.get(f"/payment/charges/{payment_id}")["refunded_amount"] == 650

    rest = refund(server, payment_id)  # no amount: whatever is left
    assert rest.status_code == 201
    assert rest.json()["amount"] == 350
    fetched = server.get(f"/payment/charges/{payment_id}")
    assert (fetched["status"], fetched["refunded_amount"]) == ("refunded", 1000)
    assert [r["amount"] for r in fetched["refunds"]] == [400, 250, 350]
    [listed] = server.get("/payment/charges", params={"order_id": order_id})["charges"]
    assert listed == fetched

    more = refund(server, payment_id, amount=1)
    assert more.status_code == 409
    assert error_type(more) == "InvalidStateError"

    entries = server.audit(order_id)
    assert ledger(entries) == [
        ("payment", "charge", "succeeded"),
        ("payment", "refund", "succeeded"),
        ("payment", "refund", "succeeded"),
        ("payment", "refund", "succeeded"),
        ("payment", "refund", "failed"),
    ]
    assert [e["details"]["amount"] for e in entries] == [1000, 400, 250, 350, 1]
    assert [e["details"].get("refunded_amount") for e in entries[1:4]] == [400, 650, 1000]


def test_refunding_exactly_the_rest_with_an_amount_completes_the_refund(order_services):
    server = order_services
    payment_id = charge(server, new_order(), amount=500)["payment_id"]
    assert refund(server, payment_id, amount=200).status_code == 201
    assert refund(server, payment_id, amount=300).status_code == 201
    assert server.get(f"/payment/charges/{payment_id}")["status"] == "refunded"


def test_a_refund_above_what_is_left_is_422_and_changes_nothing(order_services):
    server = order_services
    order_id = new_order()
    payment_id = charge(server, order_id, amount=1000)["payment_id"]
    assert refund(server, payment_id, amount=600).status_code == 201
    key = new_key()
    too_much = refund(server, payment_id, amount=401, key=key)
    assert too_much.status_code == 422
    assert error_type(too_much) == "ValidationError"
    message = too_much.json()["error"]["message"]
    assert message.startswith("amount")
    assert "400" in message  # what is left
    fetched = server.get(f"/payment/charges/{payment_id}")
    assert (fetched["status"], fetched["refunded_amount"], len(fetched["refunds"])) == (
        "partially_refunded",
        600,
        1,
    )
    # Final: the refundable amount never grows, so the refusal is replayed.
    replay = refund(server, payment_id, amount=401, key=key)
    assert (replay.status_code, replay.content) == (422, too_much.content)
    assert ledger(server.audit(order_id))[-1] == ("payment", "refund", "failed")
    assert len(server.audit(order_id)) == 3


def test_concurrent_partial_refunds_never_refund_more_than_the_charge(order_services):
    server = order_services
    order_id = new_order()
    payment_id = charge(server, order_id, amount=1000)["payment_id"]
    responses = run_concurrently(8, lambda _i: refund(server, payment_id, amount=300))
    assert sorted(r.status_code for r in responses) == [201] * 3 + [422] * 5
    fetched = server.get(f"/payment/charges/{payment_id}")
    assert (fetched["status"], fetched["refunded_amount"]) == ("partially_refunded", 900)
    assert refund(server, payment_id).json()["amount"] == 100
    assert server.get(f"/payment/charges/{payment_id}")["status"] == "refunded"
