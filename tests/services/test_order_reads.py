"""Per-order reads: what an order really has at each service, whatever the caller saw of the answers."""

from __future__ import annotations

import time

import pytest
import requests

from tests.services.conftest import SHORT_HOLD
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

LISTS = [
    ("/payment/charges", "charges"),
    ("/inventory/reservations", "reservations"),
    ("/shipping/shipments", "shipments"),
]


def created(response: requests.Response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def listed(server, path: str, field: str, order_id: str) -> list[dict]:
    response = server.get_response(path, params={"order_id": order_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {field}, body
    return body[field]


def reserve(server, order_id: str, quantity: int = 2) -> dict:
    body = reservation_body(order_id, items=[{"sku": new_sku(), "quantity": quantity}])
    return created(server.post_response("/inventory/reservations", body, idempotency_key=new_key()))


def test_charges_of_an_order_with_refunds_oldest_first(order_services):
    order_id = new_order()
    first = created(
        order_services.post_response("/payment/charges", charge_body(order_id), idempotency_key=new_key())
    )
    refund = created(
        order_services.post_response(
            f"/payment/charges/{first['payment_id']}/refund",
            {"reason": "order cancelled", "amount": 1000},
            idempotency_key=new_key(),
        )
    )
    # A declined charge is not stored as a charge: only the ledger knows about it.
    declined = order_services.post_response(
        "/payment/charges",
        charge_body(order_id, payment_method="pm_card_declined"),
        idempotency_key=new_key(),
    )
    assert declined.status_code == 402
    second = created(
        order_services.post_response(
            "/payment/charges", charge_body(order_id, amount=1500), idempotency_key=new_key()
        )
    )
    # Another order's charge does not show up.
    order_services.post("/payment/charges", charge_body(new_order()), idempotency_key=new_key())
    entries_before = order_services.audit(order_id)

    charges = listed(order_services, "/payment/charges", "charges", order_id)

    assert [c["payment_id"] for c in charges] == [first["payment_id"], second["payment_id"]]
    assert charges == [
        order_services.get(f"/payment/charges/{first['payment_id']}"),
        order_services.get(f"/payment/charges/{second['payment_id']}"),
    ]
    assert charges[0]["status"] == "partially_refunded"  # 1000 of 4999
    assert charges[0]["refunded_amount"] == 1000
    assert charges[0]["refunds"] == [refund]
    assert refund["amount"] == 1000
    assert charges[1]["status"] == "succeeded"
    assert charges[1]["refunds"] == []
    # Reads write nothing to the ledger.
    assert order_services.audit(order_id) == entries_before
    assert ledger(entries_before) == [
        ("payment", "charge", "succeeded"),
        ("payment", "refund", "succeeded"),
        ("payment", "charge", "failed"),
        ("payment", "charge", "succeeded"),
    ]


def test_a_charge_whose_answer_was_lost_is_found(order_services):
    """The charge happened; the caller never saw its payment_id (e.g. a client timeout)."""
    order_id = new_order()
    order_services.post_response("/payment/charges", charge_body(order_id), idempotency_key=new_key())
    [charge] = listed(order_services, "/payment/charges", "charges", order_id)
    assert charge["order_id"] == order_id
    assert charge["status"] == "succeeded"
    assert charge["amount"] == charge_body(order_id)["amount"]


def test_two_reservations_of_an_order_oldest_first(order_services):
    order_id = new_order()
    first = reserve(order_services, order_id, quantity=1)
    second = reserve(order_services, order_id, quantity=3)
    reserve(order_services, new_order())
    order_services.post(
        f"/inventory/reservations/{first['reservation_id']}/release",
        {"reason": "test"},
        idempotency_key=new_key(),
    )
    entries_before = order_services.audit(order_id)

    reservations = listed(order_services, "/inventory/reservations", "reservations", order_id)

    assert [r["reservation_id"] for r in reservations] == [first["reservation_id"], second["reservation_id"]]
    assert reservations == [
        order_services.get(f"/inventory/reservations/{first['reservation_id']}"),
        order_services.get(f"/inventory/reservations/{second['reservation_id']}"),
    ]
    assert [r["status"] for r in reservations] == ["released", "held"]
    assert reservations[1]["items"] == second["items"]
    assert order_services.audit(order_id) == entries_before


def test_a_hold_that_ran_out_is_listed_as_expired(short_hold_server):
    """Like every inventory request, the list first expires due holds, so it never shows a stale ``held``.
    The ``release``/``expired`` entry is the hold's own (an audit read would write it just the same)."""
    server = short_hold_server
    order_id = new_order()
    reservation = reserve(server, order_id)
    time.sleep(SHORT_HOLD + 0.3)

    [listed_reservation] = listed(server, "/inventory/reservations", "reservations", order_id)

    assert listed_reservation["reservation_id"] == reservation["reservation_id"]
    assert listed_reservation["status"] == "expired"
    assert ledger(server.audit(order_id)) == [
        ("inventory", "reserve", "succeeded"),
        ("inventory", "release", "expired"),
    ]
    listed(server, "/inventory/reservations", "reservations", order_id)
    assert len(server.audit(order_id)) == 2


def test_shipment_after_cancel_is_listed_as_cancelled(order_services):
    order_id = new_order()
    reservation = reserve(order_services, order_id)
    shipment = created(
        order_services.post_response(
            "/shipping/shipments",
            shipment_body(order_id, reservation["reservation_id"]),
            idempotency_key=new_key(),
        )
    )
    order_services.post(
        f"/shipping/shipments/{shipment['shipment_id']}/cancel", {"reason": "test"}, idempotency_key=new_key()
    )
    entries_before = order_services.audit(order_id)

    [listed_shipment] = listed(order_services, "/shipping/shipments", "shipments", order_id)

    assert listed_shipment == order_services.get(f"/shipping/shipments/{shipment['shipment_id']}")
    assert listed_shipment["status"] == "cancelled"
    assert {k: v for k, v in listed_shipment.items() if k != "status"} == {
        k: v for k, v in shipment.items() if k != "status"
    }
    [listed_reservation] = listed(order_services, "/inventory/reservations", "reservations", order_id)
    assert listed_reservation["status"] == "held"
    assert order_services.audit(order_id) == entries_before


@pytest.mark.parametrize(("path", "field"), LISTS)
def test_unknown_order_has_empty_lists(order_services, path, field):
    assert listed(order_services, path, field, new_order()) == []


@pytest.mark.parametrize(("path", "field"), LISTS)
@pytest.mark.parametrize("params", [{}, {"order_id": ""}, {"order_id": "   "}, {"other": "x"}])
def test_order_id_is_required(order_services, path, field, params):
    response = order_services.get_response(path, params=params)
    assert response.status_code == 422, response.text
    assert error_type(response) == "ValidationError"
    assert response.json()["error"]["message"].startswith("order_id: ")


@pytest.mark.parametrize(("path", "field"), LISTS)
def test_reads_need_the_api_key(order_services, path, field):
    url = order_services.url(path)
    for headers in ({}, {"Authorization": "Bearer wrong-key"}):
        response = requests.get(url, params={"order_id": new_order()}, headers=headers, timeout=5)
        assert response.status_code == 401
        assert error_type(response) == "AuthenticationError"


@pytest.mark.parametrize(("path", "field"), LISTS)
def test_reads_are_subject_to_their_services_faults(services, path, field):
    server = services
    service = path.strip("/").split("/")[0]
    server.set_faults(service, error_rate=1.0)
    response = server.get_response(path, params={"order_id": new_order()})
    assert response.status_code == 503
    assert error_type(response) == "ServiceUnavailableError"
    for other_path, other_field in LISTS:
        if other_path != path:
            assert listed(server, other_path, other_field, new_order()) == []
    server.clear_faults()
    assert listed(server, path, field, new_order()) == []
