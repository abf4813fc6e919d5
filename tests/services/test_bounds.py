"""Bounds on amounts and quantities, ISO 4217 currencies: a 422 naming the field, never a 500."""

from __future__ import annotations

import pytest
from order_services.limits import MAX_AMOUNT, MAX_QUANTITY

from tests.services.support import (
    charge_body,
    error_type,
    ledger,
    new_key,
    new_order,
    new_sku,
    reservation_body,
)


def refused(response, field):
    assert response.status_code == 422, response.text
    assert error_type(response) == "ValidationError"
    message = response.json()["error"]["message"]
    assert message.startswith(field), message
    return message


def test_the_bounds_are_the_documented_constants():
    assert MAX_AMOUNT == 10**12
    assert MAX_QUANTITY == 10_000


@pytest.mark.parametrize("amount", [2**63, 2**63 - 1, 2**64, MAX_AMOUNT + 1, 10**30, -(2**63)])
def test_charge_amount_out_of_bounds(order_services, amount):
    order_id = new_order()
    response = order_services.post_response(
        "/payment/charges", charge_body(order_id, amount=amount), idempotency_key=new_key()
    )
    refused(response, "amount")
    assert order_services.audit(order_id) == []


def test_charge_amount_at_the_bound_is_accepted(order_services):
    order_id = new_order()
    response = order_services.post_response(
        "/payment/charges", charge_body(order_id, amount=MAX_AMOUNT), idempotency_key=new_key()
    )
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == MAX_AMOUNT
    [entry] = order_services.audit(order_id)
    assert entry["details"]["amount"] == MAX_AMOUNT


@pytest.mark.parametrize("amount", [2**63, MAX_AMOUNT + 1, 0])
def test_refund_amount_out_of_bounds(order_services, amount):
    order_id = new_order()
    payment = order_services.post("/payment/charges", charge_body(order_id), idempotency_key=new_key())
    response = order_services.post_response(
        f"/payment/charges/{payment['payment_id']}/refund",
        {"reason": "r", "amount": amount},
        idempotency_key=new_key(),
    )
    refused(response, "amount")
    assert order_services.get(f"/payment/charges/{payment['payment_id']}")["refunds"] == []
    assert ledger(order_services.audit(order_id)) == [("payment", "charge", "succeeded")]


@pytest.mark.parametrize("quantity", [MAX_QUANTITY + 1, 2**63, 2**70])
def test_quantity_out_of_bounds(order_services, quantity):
    order_id, sku = new_order(), new_sku()
    body = reservation_body(
        order_id, items=[{"sku": new_sku(), "quantity": 1}, {"sku": sku, "quantity": quantity}]
    )
    refused(
        order_services.post_response("/inventory/reservations", body, idempotency_key=new_key()),
        "items.1.quantity",
    )
    assert order_services.audit(order_id) == []
    assert order_services.get(f"/inventory/stock/{sku}")["reserved"] == 0


def test_quantity_at_the_bound_is_accepted(server_factory):
    server = server_factory(initial_stock=MAX_QUANTITY)
    order_id, sku = new_order(), new_sku()
    body = reservation_body(order_id, items=[{"sku": sku, "quantity": MAX_QUANTITY}])
    response = server.post_response("/inventory/reservations", body, idempotency_key=new_key())
    assert response.status_code == 201, response.text
    assert server.get(f"/inventory/stock/{sku}")["available"] == 0
    assert ledger(server.audit(order_id)) == [("inventory", "reserve", "succeeded")]


@pytest.mark.parametrize("currency", ["eur", "Eur", "XYZ", "ABC", "EURO", "EU", "", "€€€", 978])
def test_unknown_or_lower_case_currency_is_422(order_services, currency):
    order_id = new_order()
    response = order_services.post_response(
        "/payment/charges", charge_body(order_id, currency=currency), idempotency_key=new_key()
    )
    refused(response, "currency")
    assert order_services.audit(order_id) == []


@pytest.mark.parametrize("currency", ["EUR", "USD", "JPY", "CHF", "BHD"])
def test_iso_4217_currencies_are_accepted(order_services, currency):
    order_id = new_order()
    response = order_services.post_response(
        "/payment/charges", charge_body(order_id, currency=currency), idempotency_key=new_key()
    )
    assert response.status_code == 201, response.text
    assert response.json()["currency"] == currency
    assert ledger(order_services.audit(order_id)) == [("payment", "charge", "succeeded")]


def test_admin_fault_seed_and_latency_bounds(services):
    server = services
    for body, field in (
        ({"service": "payment", "seed": 2**64}, "seed"),
        ({"service": "payment", "seed": -1}, "seed"),
        ({"service": "payment", "latency_ms": 10**20}, "latency_ms"),
    ):
        refused(server.post_response("/admin/faults", body), field)
    assert server.faults() == []


@pytest.mark.parametrize(("amount", "expected"), [(2.0, 2), (1e3, 1000), (7024174.0, 7024174)])
def test_an_integral_json_number_is_an_integer(order_services, amount, expected):
    """JSON Schema's integer is any number without a fractional part: 2.0 and 1e3 are integers
    (found by the schema fuzz test: the server refused schema-valid amounts)."""
    order_id = new_order()
    response = order_services.post_response(
        "/payment/charges", charge_body(order_id, amount=amount), idempotency_key=new_key()
    )
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == expected
    assert ledger(order_services.audit(order_id)) == [("payment", "charge", "succeeded")]


@pytest.mark.parametrize("quantity", [1.5, 1e100, float("1e4") + 0.5, True, "2"])
def test_a_fractional_boolean_or_string_quantity_is_422(order_services, quantity):
    order_id = new_order()
    body = reservation_body(order_id, items=[{"sku": new_sku(), "quantity": quantity}])
    refused(
        order_services.post_response("/inventory/reservations", body, idempotency_key=new_key()),
        "items.0.quantity",
    )
    assert order_services.audit(order_id) == []


def test_email_body_is_bounded_to_fit_a_request(order_services):
    """The e-mail body's limit (16 000 characters) fits in a 64 KiB request: past it, a 422 naming
    the field, not a 413."""
    from tests.services.support import email_body

    order_id = new_order()
    response = order_services.post_response(
        "/notification/emails", email_body(order_id, body="a" * 16_001), idempotency_key=new_key()
    )
    refused(response, "body")
    assert order_services.audit(order_id) == []
    fits = order_services.post_response(
        "/notification/emails", email_body(order_id, body="a" * 16_000), idempotency_key=new_key()
    )
    assert fits.status_code == 201
    assert ledger(order_services.audit(order_id)) == [("notification", "email", "succeeded")]
