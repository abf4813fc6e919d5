"""Shipping: scheduling commits the reservation, cancellation, dispatch, undeliverable addresses."""

from __future__ import annotations

import re
import time
from datetime import date

from tests.services.conftest import FAST_DISPATCH
from tests.services.support import (
    address,
    error_type,
    ledger,
    new_key,
    new_order,
    new_sku,
    reservation_body,
    shipment_body,
)


def reserve(server, order_id, sku, quantity=2):
    response = server.post_response(
        "/inventory/reservations",
        reservation_body(order_id, items=[{"sku": sku, "quantity": quantity}]),
        idempotency_key=new_key(),
    )
    assert response.status_code == 201, response.text
    return response.json()


def schedule(server, order_id, reservation_id, key=None, **changes):
    return server.post_response(
        "/shipping/shipments",
        shipment_body(order_id, reservation_id, **changes),
        idempotency_key=key or new_key(),
    )


def stock(server, sku):
    return server.get_response(f"/inventory/stock/{sku}").json()


def test_schedule_commits_the_reservation(order_services):
    order_id, sku = new_order(), new_sku()
    reservation = reserve(order_services, order_id, sku)
    response = schedule(order_services, order_id, reservation["reservation_id"])
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "shipment_id",
        "order_id",
        "reservation_id",
        "tracking_number",
        "carrier",
        "service_level",
        "address",
        "status",
        "estimated_delivery",
        "dispatch_at",
    }
    assert body["shipment_id"].startswith("shp_")
    assert re.fullmatch(r"TRK\d+", body["tracking_number"])
    assert body["carrier"] == "ACME Freight"
    assert body["service_level"] == "standard"
    assert body["status"] == "scheduled"
    assert body["address"]["line1"] == address()["line1"]
    assert date.fromisoformat(body["estimated_delivery"]) > date.today()
    assert body["dispatch_at"]

    reservation_now = order_services.get_response(
        f"/inventory/reservations/{reservation['reservation_id']}"
    ).json()
    assert reservation_now["status"] == "committed"
    assert stock(order_services, sku) == {"sku": sku, "on_hand": 998, "reserved": 0, "available": 998}
    assert order_services.get_response(f"/shipping/shipments/{body['shipment_id']}").json() == body

    release = order_services.post_response(
        f"/inventory/reservations/{reservation['reservation_id']}/release", {}, idempotency_key=new_key()
    )
    assert release.status_code == 409
    assert error_type(release) == "InvalidStateError"

    twice = schedule(order_services, order_id, reservation["reservation_id"])
    assert twice.status_code == 409
    assert error_type(twice) == "InvalidStateError"


def test_express_is_faster(order_services):
    order_id = new_order()
    standard = schedule(
        order_services, order_id, reserve(order_services, order_id, new_sku())["reservation_id"]
    )
    express = schedule(
        order_services,
        order_id,
        reserve(order_services, order_id, new_sku())["reservation_id"],
        service_level="express",
    )
    assert express.status_code == 201
    assert express.json()["carrier"] == "ACME Express"
    assert express.json()["estimated_delivery"] < standard.json()["estimated_delivery"]


def test_undeliverable_address(order_services):
    order_id, sku = new_order(), new_sku()
    reservation = reserve(order_services, order_id, sku)
    key = new_key()
    bad_address = address(line1="1 UNDELIVERABLE Road")
    response = schedule(order_services, order_id, reservation["reservation_id"], key=key, address=bad_address)
    assert response.status_code == 422
    assert error_type(response) == "AddressUndeliverableError"
    replay = schedule(order_services, order_id, reservation["reservation_id"], key=key, address=bad_address)
    assert (replay.status_code, replay.content) == (422, response.content)
    assert (
        order_services.get_response(f"/inventory/reservations/{reservation['reservation_id']}").json()[
            "status"
        ]
        == "held"
    )
    assert ledger(order_services.audit(order_id)) == [
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "failed"),
    ]


def test_cancel_then_release(order_services):
    order_id, sku = new_order(), new_sku()
    reservation = reserve(order_services, order_id, sku, quantity=3)
    shipment = schedule(order_services, order_id, reservation["reservation_id"]).json()
    key = new_key()
    cancel_path = f"/shipping/shipments/{shipment['shipment_id']}/cancel"
    cancelled = order_services.post_response(cancel_path, {"reason": "payment refunded"}, idempotency_key=key)
    assert cancelled.status_code == 200
    assert cancelled.json() == {"shipment_id": shipment["shipment_id"], "status": "cancelled"}
    replay = order_services.post_response(cancel_path, {"reason": "payment refunded"}, idempotency_key=key)
    assert (replay.status_code, replay.content) == (200, cancelled.content)
    assert (
        order_services.get_response(f"/shipping/shipments/{shipment['shipment_id']}").json()["status"]
        == "cancelled"
    )
    assert (
        order_services.get_response(f"/inventory/reservations/{reservation['reservation_id']}").json()[
            "status"
        ]
        == "held"
    )
    assert stock(order_services, sku) == {"sku": sku, "on_hand": 1000, "reserved": 3, "available": 997}

    released = order_services.post_response(
        f"/inventory/reservations/{reservation['reservation_id']}/release", {}, idempotency_key=new_key()
    )
    assert released.status_code == 200
    assert released.json()["status"] == "released"
    assert stock(order_services, sku) == {"sku": sku, "on_hand": 1000, "reserved": 0, "available": 1000}

    again = order_services.post_response(cancel_path, {}, idempotency_key=new_key())
    assert again.status_code == 409
    assert error_type(again) == "InvalidStateError"

    assert ledger(order_services.audit(order_id)) == [
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("shipping", "cancel", "succeeded"),
        ("inventory", "release", "succeeded"),
        ("shipping", "cancel", "failed"),
    ]


def test_shipment_dispatches_after_the_delay(limited_server):
    server = limited_server
    order_id = new_order()
    reservation = reserve(server, order_id, new_sku(), quantity=1)
    started = time.monotonic()
    shipment = schedule(server, order_id, reservation["reservation_id"]).json()
    status = server.get_response(f"/shipping/shipments/{shipment['shipment_id']}").json()["status"]
    if time.monotonic() - started < FAST_DISPATCH:  # (a very slow machine may already be past it)
        assert status == "scheduled"
    time.sleep(FAST_DISPATCH + 0.2)
    assert (
        server.get_response(f"/shipping/shipments/{shipment['shipment_id']}").json()["status"] == "dispatched"
    )
    cancel = server.post_response(
        f"/shipping/shipments/{shipment['shipment_id']}/cancel", {}, idempotency_key=new_key()
    )
    assert cancel.status_code == 409
    assert error_type(cancel) == "InvalidStateError"
    assert (
        server.get_response(f"/shipping/shipments/{shipment['shipment_id']}").json()["status"] == "dispatched"
    )


def test_unknown_ids_are_404(order_services):
    order_id = new_order()
    response = schedule(order_services, order_id, "res_nope")
    assert response.status_code == 404
    assert error_type(response) == "ReservationNotFoundError"
    assert ledger(order_services.audit(order_id)) == [("shipping", "schedule", "failed")]
    assert error_type(order_services.get_response("/shipping/shipments/shp_nope")) == "ShipmentNotFoundError"
    cancel = order_services.post_response(
        "/shipping/shipments/shp_nope/cancel", {}, idempotency_key=new_key()
    )
    assert cancel.status_code == 404
    assert error_type(cancel) == "ShipmentNotFoundError"


def test_reservation_of_another_order_is_409(order_services):
    reservation = reserve(order_services, new_order(), new_sku())
    response = schedule(order_services, new_order(), reservation["reservation_id"])
    assert response.status_code == 409
    assert error_type(response) == "InvalidStateError"
