"""Fault injection: 503s that do nothing, reproducible sequences, latency, clearing."""

from __future__ import annotations

import time

from tests.services.support import charge_body, email_body, error_type, new_key, new_order, reservation_body


def outcomes(server, service_path, count):
    return [server.get_response(service_path).status_code for _ in range(count)]


def test_error_rate_one_fails_everything_and_writes_nothing(services):
    server = services
    config = server.set_faults("payment", error_rate=1.0)
    assert config["service"] == "payment"
    assert config["error_rate"] == 1.0
    order_id = new_order()
    key = new_key()
    response = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=key)
    assert response.status_code == 503
    assert error_type(response) == "ServiceUnavailableError"
    assert server.get_response("/payment/charges/pay_any").status_code == 503
    assert server.audit(order_id) == []

    # Other services are unaffected.
    other = server.post_response("/notification/emails", email_body(order_id), idempotency_key=new_key())
    assert other.status_code == 201

    # A 503 is not stored: the same key succeeds once the fault is gone.
    server.clear_faults()
    retry = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=key)
    assert retry.status_code == 201
    assert [(e["service"], e["operation"]) for e in server.audit(order_id)] == [
        ("notification", "email"),
        ("payment", "charge"),
    ]


def test_seeded_error_rate_is_reproducible(services):
    server = services
    server.set_faults("payment", error_rate=0.5, seed=7)
    first = outcomes(server, "/payment/charges/pay_missing", 30)
    server.set_faults("payment", error_rate=0.5, seed=7)
    second = outcomes(server, "/payment/charges/pay_missing", 30)
    assert first == second
    assert set(first) == {404, 503}
    server.set_faults("payment", error_rate=0.5, seed=8)
    assert outcomes(server, "/payment/charges/pay_missing", 30) != first


def test_list_and_delete_faults(services):
    server = services
    server.set_faults("inventory", error_rate=1.0, seed=3)
    server.set_faults("shipping", latency_ms=10, seed=4)
    assert server.faults() == [
        {"service": "inventory", "error_rate": 1.0, "latency_ms": 0, "seed": 3, "phase": "before"},
        {"service": "shipping", "error_rate": 0.0, "latency_ms": 10, "seed": 4, "phase": "before"},
    ]
    order_id = new_order()
    body = reservation_body(order_id)
    assert server.post_response("/inventory/reservations", body, idempotency_key=new_key()).status_code == 503

    response = server.delete_response("/admin/faults")
    assert response.status_code == 200
    assert server.faults() == []
    assert server.post_response("/inventory/reservations", body, idempotency_key=new_key()).status_code == 201


def test_latency_slows_calls(services):
    server = services
    server.set_faults("notification", latency_ms=300)
    started = time.monotonic()
    response = server.get_response("/notification/outbox", params={"order_id": new_order()})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 0.3


def test_invalid_fault_configs_are_422(services):
    server = services
    bad_rate = server.post_response("/admin/faults", {"service": "payment", "error_rate": 1.5})
    assert bad_rate.status_code == 422
    assert "error_rate" in bad_rate.json()["error"]["message"]
    bad_service = server.post_response("/admin/faults", {"service": "billing"})
    assert bad_service.status_code == 422
    assert "service" in bad_service.json()["error"]["message"]
    assert server.faults() == []
