"""Inventory: test values, all-or-nothing holds, release, no overselling, lazy hold expiry."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.services.conftest import LIMITED_STOCK, SHORT_HOLD
from tests.services.support import (
    error_type,
    ledger,
    new_key,
    new_order,
    new_sku,
    reservation_body,
    run_concurrently,
)


def reserve(server, order_id, items, key=None, **changes):
    return server.post_response(
        "/inventory/reservations",
        reservation_body(order_id, items=items, **changes),
        idempotency_key=key or new_key(),
    )


def stock(server, sku):
    response = server.get_response(f"/inventory/stock/{sku}")
    assert response.status_code == 200
    return response.json()


def test_reservation_holds_stock(order_services):
    order_id = new_order()
    sku_a, sku_b = new_sku(), new_sku()
    assert stock(order_services, sku_a) == {"sku": sku_a, "on_hand": 1000, "reserved": 0, "available": 1000}
    items = [{"sku": sku_a, "quantity": 3}, {"sku": sku_b, "quantity": 1}]
    response = reserve(order_services, order_id, items, priority="high")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "reservation_id",
        "order_id",
        "items",
        "region",
        "warehouse_id",
        "priority",
        "status",
        "expires_at",
    }
    assert body["reservation_id"].startswith("res_")
    assert body["order_id"] == order_id
    assert body["items"] == items
    assert body["region"] == "eu-west"
    assert body["warehouse_id"]
    assert body["priority"] == "high"
    assert body["status"] == "held"
    expires = datetime.fromisoformat(body["expires_at"])
    assert abs(expires - datetime.now(timezone.utc) - timedelta(seconds=86400)) < timedelta(minutes=5)

    assert stock(order_services, sku_a) == {"sku": sku_a, "on_hand": 1000, "reserved": 3, "available": 997}
    assert order_services.get_response(f"/inventory/reservations/{body['reservation_id']}").json() == body
    assert ledger(order_services.audit(order_id)) == [("inventory", "reserve", "succeeded")]


@pytest.mark.parametrize(
    ("sku", "region", "status", "expected"),
    [
        ("SKU-DISCONTINUED", "eu-west", 422, "ItemDiscontinuedError"),
        ("SKU-OUT-OF-STOCK", "eu-west", 409, "OutOfStockError"),
        (None, "unserviced", 422, "RegionNotServicedError"),
    ],
)
def test_inventory_test_values(order_services, sku, region, status, expected):
    order_id = new_order()
    key = new_key()
    items = [{"sku": sku or new_sku(), "quantity": 1}]
    response = reserve(order_services, order_id, items, key=key, region=region)
    assert response.status_code == status
    assert error_type(response) == expected
    replay = reserve(order_services, order_id, items, key=key, region=region)
    assert (replay.status_code, replay.content) == (status, response.content)
    entries = order_services.audit(order_id)
    # Final refusals are replayed (one entry); out of stock is not stored: the retry is tried again.
    tries = 2 if expected == "OutOfStockError" else 1
    assert replay.headers.get("Idempotent-Replayed") == (None if tries == 2 else "true")
    assert len(entries) == tries
    for entry in entries:
        assert (entry["operation"], entry["status"], entry["details"]["error_type"]) == (
            "reserve",
            "failed",
            expected,
        )


def test_out_of_stock_sku_starts_empty(order_services):
    assert stock(order_services, "SKU-OUT-OF-STOCK")["available"] == 0


def test_all_or_nothing(order_services):
    sku = new_sku()
    items = [{"sku": sku, "quantity": 5}, {"sku": "SKU-OUT-OF-STOCK", "quantity": 1}]
    response = reserve(order_services, new_order(), items)
    assert response.status_code == 409
    assert error_type(response) == "OutOfStockError"
    assert stock(order_services, sku)["reserved"] == 0

    too_many = [{"sku": sku, "quantity": 999}, {"sku": sku, "quantity": 2}]  # 1001 of one SKU in total
    response = reserve(order_services, new_order(), too_many)
    assert response.status_code == 409
    assert stock(order_services, sku) == {"sku": sku, "on_hand": 1000, "reserved": 0, "available": 1000}


def test_release_flow(order_services):
    order_id = new_order()
    sku = new_sku()
    reservation = reserve(order_services, order_id, [{"sku": sku, "quantity": 4}]).json()
    path = f"/inventory/reservations/{reservation['reservation_id']}/release"
    key = new_key()
    released = order_services.post_response(path, {"reason": "payment failed"}, idempotency_key=key)
    assert released.status_code == 200
    assert released.json() == {"reservation_id": reservation["reservation_id"], "status": "released"}
    assert stock(order_services, sku)["available"] == 1000

    replay = order_services.post_response(path, {"reason": "payment failed"}, idempotency_key=key)
    assert (replay.status_code, replay.content) == (200, released.content)
    again = order_services.post_response(path, {"reason": "again"}, idempotency_key=new_key())
    assert again.status_code == 409
    assert error_type(again) == "InvalidStateError"
    status = order_services.get_response(f"/inventory/reservations/{reservation['reservation_id']}").json()[
        "status"
    ]
    assert status == "released"

    assert ledger(order_services.audit(order_id)) == [
        ("inventory", "reserve", "succeeded"),
        ("inventory", "release", "succeeded"),
        ("inventory", "release", "failed"),
    ]


def test_release_without_body(order_services):
    reservation = reserve(order_services, new_order(), [{"sku": new_sku(), "quantity": 1}]).json()
    response = order_services.post_response(
        f"/inventory/reservations/{reservation['reservation_id']}/release", idempotency_key=new_key()
    )
    assert response.status_code == 200


def test_unknown_reservation_is_404(order_services):
    assert (
        error_type(order_services.get_response("/inventory/reservations/res_nope"))
        == "ReservationNotFoundError"
    )
    response = order_services.post_response(
        "/inventory/reservations/res_nope/release", {}, idempotency_key=new_key()
    )
    assert response.status_code == 404
    assert error_type(response) == "ReservationNotFoundError"


def test_concurrent_reservations_never_oversell(limited_server):
    sku = new_sku()
    responses = run_concurrently(
        20, lambda i: reserve(limited_server, new_order(), [{"sku": sku, "quantity": 1}])
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * LIMITED_STOCK + [409] * (20 - LIMITED_STOCK)
    assert {error_type(r) for r in responses if r.status_code == 409} == {"OutOfStockError"}
    assert stock(limited_server, sku) == {
        "sku": sku,
        "on_hand": LIMITED_STOCK,
        "reserved": LIMITED_STOCK,
        "available": 0,
    }


def test_concurrent_multi_unit_reservations_never_oversell(limited_server):
    sku = new_sku()
    responses = run_concurrently(
        10, lambda i: reserve(limited_server, new_order(), [{"sku": sku, "quantity": 2}])
    )
    assert sum(r.status_code == 201 for r in responses) == LIMITED_STOCK // 2
    assert stock(limited_server, sku)["available"] == LIMITED_STOCK % 2


def test_expired_hold_returns_its_stock(short_hold_server):
    server = short_hold_server
    order_id = new_order()
    sku = new_sku()
    reservation = reserve(server, order_id, [{"sku": sku, "quantity": 7}]).json()
    assert stock(server, sku)["reserved"] == 7
    time.sleep(SHORT_HOLD + 0.3)

    entries = server.audit(order_id)  # an audit read expires due holds
    assert ledger(entries) == [("inventory", "reserve", "succeeded"), ("inventory", "release", "expired")]
    assert entries[1]["idempotency_key"] is None
    assert entries[1]["details"]["reservation_id"] == reservation["reservation_id"]
    assert stock(server, sku) == {"sku": sku, "on_hand": 1000, "reserved": 0, "available": 1000}
    assert (
        server.get_response(f"/inventory/reservations/{reservation['reservation_id']}").json()["status"]
        == "expired"
    )

    late = server.post_response(
        f"/inventory/reservations/{reservation['reservation_id']}/release", {}, idempotency_key=new_key()
    )
    assert late.status_code == 409
    assert error_type(late) == "InvalidStateError"
    assert [e["status"] for e in server.audit(order_id)].count("expired") == 1


def test_expiry_also_happens_on_inventory_requests(short_hold_server):
    server = short_hold_server
    sku = new_sku()
    reserve(server, new_order(), [{"sku": sku, "quantity": 1000}])
    assert stock(server, sku)["available"] == 0
    time.sleep(SHORT_HOLD + 0.3)
    # The next reservation of the SKU sees the returned stock.
    assert reserve(server, new_order(), [{"sku": sku, "quantity": 1000}]).status_code == 201
