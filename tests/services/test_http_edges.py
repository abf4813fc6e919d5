"""Unparseable and oversized bodies, HEAD /health, 405 with a complete Allow header."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from order_services.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH

from tests.services.support import charge_body, error_type, new_key, new_order, reservation_body


def post_raw(server, path, data, content_type="application/json", **headers):
    return server.post_response(
        path, idempotency_key=new_key(), data=data, headers={"Content-Type": content_type, **headers}
    )


def assert_unparseable(response):
    assert response.status_code == 422, response.text
    assert error_type(response) == "ValidationError"
    message = response.json()["error"]["message"]
    assert message.startswith("body"), message
    return message


def charge_json(order_id: str) -> str:
    return json.dumps(charge_body(order_id))


@pytest.mark.parametrize(
    "data",
    [
        b'{"order_id": "\xff\xfe", "amount": 1}',  # not UTF-8
        b"\xc3\x28",
        b"{not json",
        b'{"order_id": "a",}',
        b"",
        b"   ",
        b'{"amount": NaN}',
        b'{"amount": Infinity}',
        b'{"amount": 1' + b"0" * 5000 + b"}",  # an integer Python refuses to parse
        ("[" * 1000 + "]" * 1000).encode(),
        ('{"order_id": ' + "[" * 1000 + "]" * 1000 + "}").encode(),
        ('{"order_id": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()[: MAX_BODY_BYTES - 1],
        ('{"a":' * 1000 + "1" + "}" * 1000).encode(),
    ],
    ids=[
        "bad-utf8",
        "bad-utf8-2",
        "not-json",
        "trailing-comma",
        "empty",
        "blank",
        "nan",
        "infinity",
        "huge-int-literal",
        "nested-1000",
        "nested-1000-in-field",
        "nested-truncated",
        "nested-objects",
    ],
)
def test_unparseable_body_is_422_and_does_nothing(order_services, data):
    order_id = new_order()
    assert_unparseable(post_raw(order_services, "/payment/charges", data))
    assert order_services.audit(order_id) == []


def test_nesting_up_to_the_limit_is_parsed(order_services):
    """Nesting is limited, not forbidden: a body nested MAX_JSON_DEPTH deep is parsed (then fails
    validation on its field, as any wrong value does)."""
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    body = json.dumps(charge_body(new_order())).replace('"cust-42"', nested)
    response = post_raw(order_services, "/payment/charges", body)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("customer_id")
    too_deep = json.dumps(charge_body(new_order())).replace('"cust-42"', "[" + nested + "]")
    assert "nested" in assert_unparseable(post_raw(order_services, "/payment/charges", too_deep))


def test_unparseable_body_is_422_on_every_service_and_admin(services):
    server = services
    for path in (
        "/payment/charges",
        "/payment/charges/pay_x/refund",
        "/inventory/reservations",
        "/inventory/reservations/res_x/release",
        "/shipping/shipments",
        "/shipping/shipments/shp_x/cancel",
        "/notification/emails",
        "/admin/faults",
    ):
        assert_unparseable(post_raw(server, path, b"\xff{"))
    assert server.faults() == []


def test_a_string_field_with_escapes_and_unicode_is_fine(order_services):
    order_id = new_order()
    body = charge_body(order_id, customer_id='Zoë \u2603 \\ "quoted" [not nesting] {')
    response = post_raw(order_services, "/payment/charges", json.dumps(body))
    assert response.status_code == 201, response.text
    assert response.json()["customer_id"] == body["customer_id"]
    assert len(order_services.audit(order_id)) == 1


def test_body_over_the_limit_is_413(order_services):
    order_id = new_order()
    body = charge_body(order_id, customer_id="c")
    padded = json.dumps({**body, "padding": "x" * MAX_BODY_BYTES})
    response = post_raw(order_services, "/payment/charges", padded)
    assert response.status_code == 413
    assert error_type(response) == "PayloadTooLargeError"
    assert str(MAX_BODY_BYTES) in response.json()["error"]["message"]
    assert order_services.audit(order_id) == []
    # Just under the limit is fine.
    fits = json.dumps({**body, "padding": "x" * (MAX_BODY_BYTES - 500)})
    assert post_raw(order_services, "/payment/charges", fits).status_code == 201


def test_chunked_body_over_the_limit_is_413(order_services):
    order_id = new_order()

    def chunks():
        yield json.dumps(charge_body(order_id))[:-1].encode() + b', "padding": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    response = order_services.post_response(
        "/payment/charges",
        idempotency_key=new_key(),
        data=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert error_type(response) == "PayloadTooLargeError"
    assert order_services.audit(order_id) == []


def test_413_comes_without_reading_the_whole_body(order_services):
    """A client announcing 1 GB gets 413 at once, though it sent only the headers and a few bytes."""
    order_id = new_order()
    head = (
        f"POST /payment/charges HTTP/1.1\r\n"
        f"Host: {order_services.host}:{order_services.port}\r\n"
        f"Authorization: Bearer {order_services.api_key}\r\n"
        f"Idempotency-Key: {new_key()}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {10**9}\r\n\r\n"
    ).encode()
    with socket.create_connection((order_services.host, order_services.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(head + charge_json(order_id).encode()[:20])
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 3
    assert order_services.audit(order_id) == []


def test_head_health_is_200(order_services):
    response = requests.head(order_services.url("/health"), timeout=5)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/admin/faults", {"GET", "POST", "DELETE"}),
        ("PATCH", "/admin/faults", {"GET", "POST", "DELETE"}),
        ("PUT", "/payment/charges", {"GET", "POST"}),
        ("DELETE", "/payment/charges/pay_x", {"GET"}),
        ("GET", "/payment/charges/pay_x/refund", {"POST"}),
        ("GET", "/notification/emails", {"POST"}),
        ("POST", "/health", {"GET", "HEAD"}),
        ("DELETE", "/inventory/reservations", {"GET", "POST"}),
    ],
)
def test_405_lists_every_method_the_path_serves(order_services, method, path, allowed):
    response = order_services.request(method, path, json={}, idempotency_key=new_key())
    assert response.status_code == 405
    assert error_type(response) == "MethodNotAllowedError"
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed


def test_a_405_on_a_service_path_changes_nothing(order_services):
    order_id = new_order()
    response = order_services.request(
        "PUT", "/inventory/reservations", json=reservation_body(order_id), idempotency_key=new_key()
    )
    assert response.status_code == 405
    assert order_services.audit(order_id) == []


@pytest.mark.parametrize(
    "path",
    [
        "/payment/charges/pay_x",
        "/inventory/reservations/res_x",
        "/inventory/stock/SKU-1",
        "/shipping/shipments/shp_x",
        "/notification/outbox",
    ],
)
def test_post_on_a_path_without_post_is_405_not_400(order_services, path):
    """Found by the schema fuzz test: the Idempotency-Key check answered 400 before routing could
    answer 405."""
    response = order_services.post_response(path, {})
    assert response.status_code == 405
    assert error_type(response) == "MethodNotAllowedError"
    assert "POST" not in response.headers["Allow"]


def test_head_health_has_the_headers_of_get(order_services):
    head = requests.head(order_services.url("/health"), timeout=5)
    get = requests.get(order_services.url("/health"), timeout=5)
    assert head.headers["content-type"] == get.headers["content-type"] == "application/json"
    assert head.content == b""
