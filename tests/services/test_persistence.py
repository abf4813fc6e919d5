"""Data survives a restart on the same database file."""

from __future__ import annotations

from tests.services.support import charge_body, ledger, new_key, new_order, new_sku, reservation_body


def test_data_survives_a_restart(server_factory, tmp_path):
    db = tmp_path / "persist.db"
    server = server_factory(db=db, api_key="restart-key", api_key_in_argv=True)
    order_id = new_order()
    sku = new_sku()
    charge_key, reserve_key = new_key(), new_key()
    charge = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=charge_key)
    reservation = server.post_response(
        "/inventory/reservations",
        reservation_body(order_id, items=[{"sku": sku, "quantity": 6}]),
        idempotency_key=reserve_key,
    )
    assert (charge.status_code, reservation.status_code) == (201, 201)
    before = server.audit(order_id)

    server.restart()

    assert (
        server.get_response(f"/payment/charges/{charge.json()['payment_id']}").json()["status"] == "succeeded"
    )
    assert server.get_response(f"/inventory/stock/{sku}").json()["reserved"] == 6
    replay = server.post_response("/payment/charges", charge_body(order_id), idempotency_key=charge_key)
    assert (replay.status_code, replay.content) == (201, charge.content)
    assert server.audit(order_id) == before
    assert ledger(before) == [("payment", "charge", "succeeded"), ("inventory", "reserve", "succeeded")]

    # The key was given as --api-key: it works, and it never appears in the logs.
    assert server.get_response("/audit/x", headers={"Authorization": "Bearer other"}).status_code == 401
    assert "restart-key" not in server.log_text()


def test_a_generated_key_that_starts_with_a_dash_reaches_the_server(server_factory, tmp_path):
    # secrets.token_urlsafe starts a value with "-" about once in 64: "--api-key -wBk..." read it
    # as an option and the server did not start.
    key = "-" + new_key()
    server = server_factory(db=tmp_path / "dash.db", api_key=key, api_key_in_argv=True)
    assert server.get_response("/audit/x", headers={"Authorization": f"Bearer {key}"}).status_code != 401
    assert server.get_response("/audit/x", headers={"Authorization": "Bearer other"}).status_code == 401
