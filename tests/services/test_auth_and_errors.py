"""Authentication, the error shape, Idempotency-Key presence, health."""

from __future__ import annotations

import pytest
import requests
from order_services.testing import OrderServicesHTTPError

from tests.services.support import charge_body, error_type, new_key, new_order

PROTECTED = [
    ("GET", "/audit/ord-x"),
    ("GET", "/admin/faults"),
    ("GET", "/inventory/stock/SKU-1"),
    ("GET", "/notification/outbox"),
    ("POST", "/payment/charges"),
    ("POST", "/inventory/reservations"),
    ("POST", "/shipping/shipments"),
    ("POST", "/notification/emails"),
    ("DELETE", "/admin/faults"),
]


def test_health_needs_no_key(order_services):
    response = requests.get(order_services.url("/health"), timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_key_is_401(order_services, method, path):
    response = requests.request(method, order_services.url(path), json={}, timeout=5)
    assert response.status_code == 401
    assert error_type(response) == "AuthenticationError"


@pytest.mark.parametrize("authorization", ["Bearer wrong-key", "Bearer ", "Basic test-key", "test-key"])
def test_wrong_key_is_401(order_services, authorization):
    response = order_services.get_response("/audit/ord-x", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert error_type(response) == "AuthenticationError"


def test_rejected_call_does_nothing(order_services):
    order_id = new_order()
    response = order_services.post_response(
        "/payment/charges",
        charge_body(order_id),
        idempotency_key=new_key(),
        headers={"Authorization": "Bearer wrong-key"},
    )
    assert response.status_code == 401
    assert order_services.audit(order_id) == []


@pytest.mark.parametrize(
    "path",
    [
        "/payment/charges",
        "/payment/charges/pay_x/refund",
        "/inventory/reservations",
        "/inventory/reservations/res_x/release",
        "/shipping/shipments",
        "/shipping/shipments/shp_x/cancel",
        "/notification/emails",
    ],
)
def test_post_without_idempotency_key_is_400(order_services, path):
    response = order_services.post_response(path, {"order_id": "ord-x"})
    assert response.status_code == 400
    assert error_type(response) == "IdempotencyKeyMissingError"


def test_blank_idempotency_key_is_400(order_services):
    order_id = new_order()
    response = order_services.post_response("/payment/charges", charge_body(order_id), idempotency_key="")
    assert response.status_code == 400
    assert error_type(response) == "IdempotencyKeyMissingError"
    assert order_services.audit(order_id) == []


def test_unknown_route_has_the_error_shape(order_services):
    response = order_services.get_response("/no/such/route")
    assert response.status_code == 404
    assert error_type(response) == "NotFoundError"


def test_the_api_key_is_never_logged(order_services):
    order_services.get_response("/audit/ord-x")
    requests.get(order_services.url("/audit/ord-x"), headers={"Authorization": "Bearer wrong"}, timeout=5)
    log = order_services.log_text()
    assert "Uvicorn running" in log or "Application startup complete" in log
    assert order_services.api_key not in log


def test_fixture_json_helpers(order_services):
    """``get``/``post`` return decoded JSON and raise OrderServicesHTTPError (with the error type)."""
    order_id = new_order()
    charged = order_services.post("/payment/charges", charge_body(order_id), idempotency_key=new_key())
    assert charged["status"] == "succeeded"
    assert order_services.get(f"/payment/charges/{charged['payment_id']}")["refunds"] == []
    with pytest.raises(OrderServicesHTTPError) as raised:
        order_services.get("/payment/charges/pay_missing")
    assert raised.value.error_type == "PaymentNotFoundError"
    assert raised.value.response.status_code == 404
    assert order_services.audit(order_id)[0]["operation"] == "charge"
