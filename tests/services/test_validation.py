"""422 ValidationError names the offending field path."""

from __future__ import annotations

import pytest

from tests.services.support import (
    charge_body,
    email_body,
    error_type,
    new_key,
    new_order,
    new_sku,
    reservation_body,
    shipment_body,
)


def invalid(path, body, field, server):
    response = server.post_response(path, body, idempotency_key=new_key())
    assert response.status_code == 422, response.text
    assert error_type(response) == "ValidationError"
    message = response.json()["error"]["message"]
    assert field in message, message
    return message


def test_quantity_names_items_index_quantity(order_services):
    body = reservation_body(new_order(), items=[{"sku": new_sku(), "quantity": 0}])
    message = invalid("/inventory/reservations", body, "items.0.quantity", order_services)
    assert message.startswith("items.0.quantity")


def test_second_item_is_named_by_its_index(order_services):
    items = [{"sku": new_sku(), "quantity": 1}, {"sku": new_sku(), "quantity": -3}]
    invalid(
        "/inventory/reservations",
        reservation_body(new_order(), items=items),
        "items.1.quantity",
        order_services,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"payment_method": "pm_card_unknown"}, "payment_method"),
        ({"amount": 0}, "amount"),
        ({"amount": "100"}, "amount"),
        ({"amount": 10.5}, "amount"),
        ({"currency": "EURO"}, "currency"),
        ({"customer_id": ""}, "customer_id"),
    ],
)
def test_charge_fields(order_services, changes, field):
    invalid("/payment/charges", charge_body(new_order(), **changes), field, order_services)


def test_missing_field_is_named(order_services):
    body = charge_body(new_order())
    del body["customer_id"]
    invalid("/payment/charges", body, "customer_id", order_services)


def test_nested_address_field(order_services):
    body = shipment_body(new_order(), "res_x")
    del body["address"]["postal_code"]
    invalid("/shipping/shipments", body, "address.postal_code", order_services)


def test_enums(order_services):
    invalid(
        "/shipping/shipments",
        shipment_body(new_order(), "res_x", service_level="overnight"),
        "service_level",
        order_services,
    )
    invalid(
        "/inventory/reservations",
        reservation_body(new_order(), priority="urgent"),
        "priority",
        order_services,
    )
    invalid("/inventory/reservations", reservation_body(new_order(), items=[]), "items", order_services)


def test_email_address(order_services):
    invalid("/notification/emails", email_body(new_order(), to="not-an-address"), "to", order_services)


def test_malformed_json(order_services):
    response = order_services.post_response(
        "/payment/charges",
        idempotency_key=new_key(),
        data="{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert error_type(response) == "ValidationError"


def test_invalid_body_is_neither_stored_nor_audited(order_services):
    """A body that fails validation is rejected before the key is used: fixing the body and retrying
    with the same key works."""
    order_id = new_order()
    key = new_key()
    bad = order_services.post_response(
        "/payment/charges", charge_body(order_id, amount=-1), idempotency_key=key
    )
    assert bad.status_code == 422
    assert order_services.audit(order_id) == []
    good = order_services.post_response("/payment/charges", charge_body(order_id), idempotency_key=key)
    assert good.status_code == 201
    assert len(order_services.audit(order_id)) == 1


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/payment/charges", charge_body(new_order(), customer_id="a\x00b"), "customer_id"),
        ("/payment/charges/pay_x/refund", {"reason": "r\x00"}, "reason"),
        ("/inventory/reservations", reservation_body(new_order(), region="eu\x00"), "region"),
        ("/notification/emails", email_body(new_order(), subject="s\x00"), "subject"),
        ("/notification/emails", email_body(new_order(), body="\x00"), "body"),
        ("/notification/emails", email_body(new_order(), to="a\x00@b"), "to"),
    ],
)
def test_nul_characters_are_refused(order_services, path, body, field):
    """U+0000 is refused in every string (PostgreSQL cannot store it in text)."""
    invalid(path, body, field, order_services)


@pytest.mark.parametrize(
    "path",
    ["/payment/charges/pay%00x", "/audit/ord%00x", "/inventory/stock/SKU%00", "/shipping/shipments/s%00"],
)
def test_nul_characters_in_paths_are_refused(order_services, path):
    response = order_services.get_response(path)
    assert response.status_code == 422, response.text
    assert error_type(response) == "ValidationError"
