"""Lost answers on demand: faults in phase ``after`` commit the operation, then answer 503.

Also the ``received`` counters of ``GET /admin/faults`` (a race test's synchronisation point) and the
reproducibility of seeded draws in both phases.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.services.support import (
    charge_body,
    email_body,
    error_type,
    ledger,
    new_key,
    new_order,
    new_sku,
    reservation_body,
)


def set_faults(server, **config):
    response = server.post_response("/admin/faults", config)
    assert response.status_code == 200, response.text
    return response.json()


def received(server, service):
    return server.get("/admin/faults")["received"][service]


def test_phase_defaults_to_before_and_is_listed(services):
    server = services
    before = set_faults(server, service="payment", error_rate=1.0, seed=1)
    after = set_faults(server, service="inventory", error_rate=0.5, latency_ms=5, seed=2, phase="after")
    assert before == {"service": "payment", "error_rate": 1.0, "latency_ms": 0, "seed": 1, "phase": "before"}
    assert after == {"service": "inventory", "error_rate": 0.5, "latency_ms": 5, "seed": 2, "phase": "after"}
    listed = server.get("/admin/faults")
    assert listed["faults"] == [before, after]
    assert set(listed["received"]) == {"payment", "inventory", "shipping", "notification"}


@pytest.mark.parametrize("phase", ["during", "AFTER", "", None, 1])
def test_unknown_phase_is_422_and_changes_nothing(services, phase):
    server = services
    response = server.post_response(
        "/admin/faults", {"service": "payment", "error_rate": 1.0, "phase": phase}
    )
    assert response.status_code == 422
    assert error_type(response) == "ValidationError"
    assert response.json()["error"]["message"].startswith("phase")
    assert server.faults() == []


def test_before_phase_does_nothing_and_answers_503(services):
    server = services
    set_faults(server, service="payment", error_rate=1.0, phase="before")
    order_id = new_order()
    response = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=new_key())
    assert response.status_code == 503
    assert error_type(response) == "ServiceUnavailableError"
    assert server.audit(order_id) == []
    server.clear_faults()
    assert server.get("/payment/charges", params={"order_id": order_id}) == {"charges": []}


def test_after_phase_commits_the_charge_then_answers_503(services):
    server = services
    set_faults(server, service="payment", error_rate=1.0, phase="after", seed=3)
    order_id = new_order()
    key = new_key()
    response = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=key)
    assert response.status_code == 503
    assert error_type(response) == "ServiceUnavailableError"

    # The charge happened: the ledger has it, and the answer is stored under the key.
    entries = server.audit(order_id)
    assert ledger(entries) == [("payment", "charge", "succeeded")]
    assert entries[0]["idempotency_key"] == key
    payment_id = entries[0]["details"]["payment_id"]

    # A replay while the fault lasts is faulted too (after the replay lookup): nothing new happens.
    again = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=key)
    assert again.status_code == 503
    server.clear_faults()
    replay = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=key)
    assert replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["payment_id"] == payment_id
    assert server.audit(order_id) == entries


def test_after_phase_commits_a_reservation_and_its_stock(services):
    server = services
    set_faults(server, service="inventory", error_rate=1.0, phase="after")
    order_id, sku = new_order(), new_sku()
    key = new_key()
    body = reservation_body(order_id, items=[{"sku": sku, "quantity": 3}])
    assert server.post_response("/inventory/reservations", body, idempotency_key=key).status_code == 503
    server.clear_faults()
    assert server.get(f"/inventory/stock/{sku}")["reserved"] == 3
    replay = server.post_response("/inventory/reservations", body, idempotency_key=key)
    assert replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert server.get(f"/inventory/stock/{sku}")["reserved"] == 3
    assert ledger(server.audit(order_id)) == [("inventory", "reserve", "succeeded")]


def test_after_phase_with_latency_commits_before_the_client_gives_up(services):
    """The client times out while the service hangs; the charge is committed all the same."""
    server = services
    set_faults(server, service="payment", error_rate=1.0, latency_ms=1500, phase="after")
    order_id = new_order()
    with pytest.raises(requests.Timeout):
        server.post_response(
            "/payment/charges", charge_body(order_id), idempotency_key=new_key(), timeout=0.5
        )
    assert ledger(server.audit(order_id)) == [("payment", "charge", "succeeded")]
    server.clear_faults()
    [charge] = server.get("/payment/charges", params={"order_id": order_id})["charges"]
    assert charge["status"] == "succeeded"


def test_after_phase_latency_without_a_drawn_fault_delays_the_real_answer(services):
    server = services
    set_faults(server, service="notification", error_rate=0.0, latency_ms=300, phase="after")
    order_id = new_order()
    started = time.monotonic()
    response = server.post_response("/notification/emails", email_body(order_id), idempotency_key=new_key())
    assert response.status_code == 201
    assert time.monotonic() - started >= 0.3
    assert ledger(server.audit(order_id)) == [("notification", "email", "succeeded")]


def test_after_phase_business_error_is_committed_then_answered_503(services):
    server = services
    set_faults(server, service="payment", error_rate=1.0, phase="after")
    order_id = new_order()
    key = new_key()
    body = charge_body(order_id, payment_method="pm_card_declined")
    assert server.post_response("/payment/charges", body, idempotency_key=key).status_code == 503
    server.clear_faults()
    replay = server.post_response("/payment/charges", body, idempotency_key=key)
    assert replay.status_code == 402
    assert error_type(replay) == "PaymentDeclinedError"
    assert ledger(server.audit(order_id)) == [("payment", "charge", "failed")]


@pytest.mark.parametrize("phase", ["before", "after"])
def test_seeded_draws_are_reproducible_in_both_phases(services, phase):
    server = services

    def outcomes():
        set_faults(server, service="notification", error_rate=0.5, seed=11, phase=phase)
        return [
            server.get_response("/notification/outbox", params={"order_id": "ord-none"}).status_code
            for _ in range(24)
        ]

    first = outcomes()
    assert first == outcomes()
    assert set(first) == {200, 503}
    # The draws do not depend on the phase: the same seed fails the same requests.
    set_faults(server, service="notification", error_rate=0.5, seed=11, phase="before")
    assert [
        server.get_response("/notification/outbox", params={"order_id": "ord-none"}).status_code
        for _ in range(24)
    ] == first


def test_received_counts_every_request_that_reaches_a_service(services):
    server = services
    start = server.get("/admin/faults")["received"]
    order_id = new_order()
    server.get_response("/payment/charges/pay_missing")  # 404
    server.post_response("/payment/charges", charge_body(order_id), idempotency_key=new_key())  # 201
    server.post_response("/payment/charges", charge_body(order_id))  # 400: no key
    server.request("PUT", "/payment/charges")  # 405
    server.get_response("/shipping/shipments", params={"order_id": order_id})
    server.get_response("/audit/" + order_id)  # not a service
    now = server.get("/admin/faults")["received"]
    assert now["payment"] - start["payment"] == 4
    assert now["shipping"] - start["shipping"] == 1
    assert now["inventory"] == start["inventory"]
    assert now["notification"] == start["notification"]
    # Clearing the faults does not reset the counters (they count since start).
    server.clear_faults()
    assert server.get("/admin/faults")["received"]["payment"] == now["payment"]


def test_received_is_counted_on_arrival_so_a_race_test_can_wait_for_it(services):
    """A slow charge is counted while it still hangs in the service: the test waits on the counter,
    not on a sleep, and then acts while the call is known to be in flight."""
    server = services
    set_faults(server, service="payment", error_rate=1.0, latency_ms=1500, phase="after")
    order_id = new_order()
    baseline = received(server, "payment")
    result: dict[str, int] = {}

    def call() -> None:
        response = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=new_key())
        result["status"] = response.status_code

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while received(server, "payment") == baseline:
        assert time.monotonic() < deadline, "the charge never reached the payment service"
        time.sleep(0.01)
    assert "status" not in result  # still in flight
    thread.join(10)
    assert result["status"] == 503
    assert ledger(server.audit(order_id)) == [("payment", "charge", "succeeded")]


def test_testing_helpers_know_the_phase_and_the_counters(services):
    server = services
    config = server.set_faults("shipping", error_rate=1.0, seed=5, phase="after")
    assert config["phase"] == "after"
    assert server.faults() == [config]
    before = server.received()["shipping"]
    server.get_response("/shipping/shipments", params={"order_id": new_order()})
    assert server.wait_received("shipping", before + 1, timeout=5) == before + 1
    assert server.received()["shipping"] == before + 1
