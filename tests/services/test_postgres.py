"""The PostgreSQL backend: a fresh database on 127.0.0.1:5432 (user postgres), dropped afterwards."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.services.support import (
    charge_body,
    error_type,
    ledger,
    new_key,
    new_order,
    new_sku,
    reservation_body,
    run_concurrently,
)

PG_HOST = os.environ.get("ORDER_SERVICES_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ORDER_SERVICES_PG_PORT", "5432"))
PG_USER = os.environ.get("ORDER_SERVICES_PG_USER", "postgres")


@pytest.fixture
def postgres_url():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3
        )
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT}: {exc}")
    admin.autocommit = True
    name = f"order_services_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_postgres_backend(server_factory, postgres_url):
    server = server_factory(db=postgres_url, initial_stock=5)
    order_id = new_order()
    key = new_key()
    first = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=key)
    assert first.status_code == 201
    replay = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=key)
    assert (replay.status_code, replay.content) == (201, first.content)
    reused = server.post_response("/payment/charges", charge_body(order_id, amount=1), idempotency_key=key)
    assert error_type(reused) == "IdempotencyKeyReusedError"

    # Concurrent repeats: the unique constraint makes the losers replay the winner's response.
    concurrent_key = new_key()
    responses = run_concurrently(
        16,
        lambda _i: server.post_response(
            "/payment/charges", charge_body(order_id, amount=7), idempotency_key=concurrent_key
        ),
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert ledger(server.audit(order_id)) == [("payment", "charge", "succeeded")] * 2

    # Concurrent reservations of a 5-unit SKU: no overselling.
    sku = new_sku()
    results = run_concurrently(
        12,
        lambda _i: server.post_response(
            "/inventory/reservations",
            reservation_body(new_order(), items=[{"sku": sku, "quantity": 1}]),
            idempotency_key=new_key(),
        ),
    )
    assert sorted(r.status_code for r in results) == [201] * 5 + [409] * 7
    assert server.get_response(f"/inventory/stock/{sku}").json()["available"] == 0


def test_postgres_state_dependent_refusals_release_the_key(server_factory, postgres_url):
    """Concurrent repeats of a refused reservation each see the state (no replay, no 500); once stock is
    back the same key reserves, and concurrent repeats of that success replay it."""
    server = server_factory(db=postgres_url, initial_stock=3)
    sku = new_sku()
    holder = server.post(
        "/inventory/reservations",
        reservation_body(new_order(), items=[{"sku": sku, "quantity": 3}]),
        idempotency_key=new_key(),
    )
    order_id, key = new_order(), new_key()
    body = reservation_body(order_id, items=[{"sku": sku, "quantity": 2}])
    refused = run_concurrently(
        8, lambda _i: server.post_response("/inventory/reservations", body, idempotency_key=key)
    )
    assert {r.status_code for r in refused} == {409}
    assert {error_type(r) for r in refused} == {"OutOfStockError"}
    assert ledger(server.audit(order_id)) == [("inventory", "reserve", "failed")] * 8

    server.post(f"/inventory/reservations/{holder['reservation_id']}/release", {}, idempotency_key=new_key())
    reserved = run_concurrently(
        8, lambda _i: server.post_response("/inventory/reservations", body, idempotency_key=key)
    )
    assert {r.status_code for r in reserved} == {201}
    assert len({r.content for r in reserved}) == 1
    assert server.get(f"/inventory/stock/{sku}")["reserved"] == 2
    assert ledger(server.audit(order_id))[8:] == [("inventory", "reserve", "succeeded")]


def test_postgres_concurrent_partial_refunds(server_factory, postgres_url):
    """The charge row lock serializes refunds of one charge: never more than was charged."""
    server = server_factory(db=postgres_url)
    order_id = new_order()
    payment = server.post("/payment/charges", charge_body(order_id, amount=1000), idempotency_key=new_key())
    path = f"/payment/charges/{payment['payment_id']}/refund"
    responses = run_concurrently(
        10, lambda _i: server.post_response(path, {"reason": "r", "amount": 300}, idempotency_key=new_key())
    )
    assert sorted(r.status_code for r in responses) == [201] * 3 + [422] * 7
    charge = server.get(f"/payment/charges/{payment['payment_id']}")
    assert (charge["status"], charge["refunded_amount"]) == ("partially_refunded", 900)
    assert ledger(server.audit(order_id)).count(("payment", "refund", "succeeded")) == 3


def test_postgres_nul_characters_are_refused_not_a_500(server_factory, postgres_url):
    """PostgreSQL cannot store U+0000 in text: every string of the contract refuses it with a 422 naming
    the field (SQLite would store it; the contract is the same on both)."""
    server = server_factory(db=postgres_url)
    order_id = new_order()
    for body, field in (
        (charge_body(order_id, customer_id="cust\x00omer"), "customer_id"),
        (charge_body("ord\x00x"), "order_id"),
    ):
        response = server.post_response("/payment/charges", body, idempotency_key=new_key())
        assert response.status_code == 422, response.text
        assert response.json()["error"]["message"].startswith(field)
    for path in ("/payment/charges/pay%00x", "/audit/ord%00x", "/inventory/stock/SKU%00"):
        response = server.get_response(path)
        assert response.status_code == 422, (path, response.text)
        assert error_type(response) == "ValidationError"
    response = server.get_response("/payment/charges", params={"order_id": "a\x00b"})
    assert response.status_code == 422
    assert server.audit(order_id) == []
