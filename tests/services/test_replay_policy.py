"""What an Idempotency-Key stores: successes and final refusals, never state-dependent refusals.

A final refusal (declined card, discontinued item, undeliverable address...) stays true, so a retry
with the same key replays it. A refusal that depends on the current state (out of stock, invalid state,
not found) is not stored: a retry with the same key is carried out again against the state it finds,
and writes its own ledger entry.
"""

from __future__ import annotations

import time

from tests.services.conftest import LIMITED_STOCK
from tests.services.support import (
    charge_body,
    error_type,
    ledger,
    new_key,
    new_order,
    new_sku,
    reservation_body,
    shipment_body,
)


def test_out_of_stock_then_restocked_the_retry_reserves(limited_server):
    server = limited_server
    sku = new_sku()
    holder, waiting = new_order(), new_order()
    hold = server.post_response(
        "/inventory/reservations",
        reservation_body(holder, items=[{"sku": sku, "quantity": LIMITED_STOCK}]),
        idempotency_key=new_key(),
    )
    assert hold.status_code == 201
    key = new_key()
    body = reservation_body(waiting, items=[{"sku": sku, "quantity": 2}])
    refused = server.post_response("/inventory/reservations", body, idempotency_key=key)
    assert refused.status_code == 409
    assert error_type(refused) == "OutOfStockError"

    # Stock comes back (the other order's hold is released) ...
    released = server.post_response(
        f"/inventory/reservations/{hold.json()['reservation_id']}/release", {}, idempotency_key=new_key()
    )
    assert released.status_code == 200
    # ... and the retry with the same key sees it.
    retry = server.post_response("/inventory/reservations", body, idempotency_key=key)
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("Idempotent-Replayed") is None
    assert server.get(f"/inventory/stock/{sku}")["reserved"] == 2
    # From now on the key replays the success.
    replay = server.post_response("/inventory/reservations", body, idempotency_key=key)
    assert (replay.status_code, replay.content) == (201, retry.content)
    entries = server.audit(waiting)
    assert ledger(entries) == [("inventory", "reserve", "failed"), ("inventory", "reserve", "succeeded")]
    assert [e["idempotency_key"] for e in entries] == [key, key]
    assert entries[0]["details"]["error_type"] == "OutOfStockError"


def test_refused_release_retried_after_the_shipment_is_cancelled_succeeds(order_services):
    server = order_services
    order_id = new_order()
    reservation = server.post(
        "/inventory/reservations", reservation_body(order_id), idempotency_key=new_key()
    )
    shipment = server.post(
        "/shipping/shipments",
        shipment_body(order_id, reservation["reservation_id"]),
        idempotency_key=new_key(),
    )
    release_path = f"/inventory/reservations/{reservation['reservation_id']}/release"
    key = new_key()
    refused = server.post_response(release_path, {"reason": "order cancelled"}, idempotency_key=key)
    assert refused.status_code == 409
    assert error_type(refused) == "InvalidStateError"

    # The manual fix: cancel the shipment, which puts the reservation back on hold.
    server.post(f"/shipping/shipments/{shipment['shipment_id']}/cancel", {}, idempotency_key=new_key())
    retry = server.post_response(release_path, {"reason": "order cancelled"}, idempotency_key=key)
    assert retry.status_code == 200, retry.text
    assert retry.json() == {"reservation_id": reservation["reservation_id"], "status": "released"}
    assert ledger(server.audit(order_id)) == [
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("inventory", "release", "failed"),
        ("shipping", "cancel", "succeeded"),
        ("inventory", "release", "succeeded"),
    ]


def test_refused_schedule_retried_after_the_reservation_is_held_again_succeeds(order_services):
    """Scheduling on a committed reservation is refused; once its shipment is cancelled, the same call
    (same key) schedules."""
    server = order_services
    order_id = new_order()
    reservation = server.post(
        "/inventory/reservations", reservation_body(order_id), idempotency_key=new_key()
    )
    first = server.post(
        "/shipping/shipments",
        shipment_body(order_id, reservation["reservation_id"]),
        idempotency_key=new_key(),
    )
    key = new_key()
    body = shipment_body(order_id, reservation["reservation_id"], service_level="express")
    refused = server.post_response("/shipping/shipments", body, idempotency_key=key)
    assert refused.status_code == 409
    assert error_type(refused) == "InvalidStateError"
    server.post(f"/shipping/shipments/{first['shipment_id']}/cancel", {}, idempotency_key=new_key())
    retry = server.post_response("/shipping/shipments", body, idempotency_key=key)
    assert retry.status_code == 201, retry.text
    assert retry.json()["service_level"] == "express"
    assert ledger(server.audit(order_id)) == [
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("shipping", "schedule", "failed"),
        ("shipping", "cancel", "succeeded"),
        ("shipping", "schedule", "succeeded"),
    ]


def test_refused_cancel_is_evaluated_again_on_retry(limited_server):
    """Cancelling a dispatched shipment is refused each time it is tried: each try is a ledger entry,
    none is a replay."""
    server = limited_server
    order_id = new_order()
    reservation = server.post(
        "/inventory/reservations",
        reservation_body(order_id, items=[{"sku": new_sku(), "quantity": 1}]),
        idempotency_key=new_key(),
    )
    shipment = server.post(
        "/shipping/shipments",
        shipment_body(order_id, reservation["reservation_id"]),
        idempotency_key=new_key(),
    )
    path = f"/shipping/shipments/{shipment['shipment_id']}/cancel"
    status, deadline = "scheduled", time.monotonic() + 10
    while status != "dispatched" and time.monotonic() < deadline:
        time.sleep(0.1)
        status = server.get(f"/shipping/shipments/{shipment['shipment_id']}")["status"]
    key = new_key()
    first = server.post_response(path, {"reason": "too late"}, idempotency_key=key)
    second = server.post_response(path, {"reason": "too late"}, idempotency_key=key)
    for response in (first, second):
        assert response.status_code == 409
        assert error_type(response) == "InvalidStateError"
        assert response.headers.get("Idempotent-Replayed") is None
    assert ledger(server.audit(order_id))[-2:] == [("shipping", "cancel", "failed")] * 2


def test_not_found_does_not_use_up_the_key(order_services):
    """A 404 is not stored: the key is free for the request that was meant."""
    server = order_services
    order_id = new_order()
    payment = server.post("/payment/charges", charge_body(order_id), idempotency_key=new_key())
    key = new_key()
    missing = server.post_response(
        "/payment/charges/pay_doesnotexist/refund", {"reason": "r"}, idempotency_key=key
    )
    assert missing.status_code == 404
    assert error_type(missing) == "PaymentNotFoundError"
    refund = server.post_response(
        f"/payment/charges/{payment['payment_id']}/refund", {"reason": "r"}, idempotency_key=key
    )
    assert refund.status_code == 201, refund.text
    assert ledger(server.audit(order_id)) == [
        ("payment", "charge", "succeeded"),
        ("payment", "refund", "succeeded"),
    ]


def test_final_refusals_are_replayed(order_services):
    server = order_services
    order_id = new_order()
    key = new_key()
    body = charge_body(order_id, payment_method="pm_card_insufficient_funds")
    first = server.post_response("/payment/charges", body, idempotency_key=key)
    replay = server.post_response("/payment/charges", body, idempotency_key=key)
    assert (first.status_code, replay.status_code) == (402, 402)
    assert replay.content == first.content
    assert replay.headers.get("Idempotent-Replayed") == "true"
    reused = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=key)
    assert error_type(reused) == "IdempotencyKeyReusedError"
    assert ledger(server.audit(order_id)) == [("payment", "charge", "failed")]
