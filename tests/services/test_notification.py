"""Notification: e-mails are queued in the outbox, never sent."""

from __future__ import annotations

from tests.services.support import email_body, ledger, new_key, new_order


def test_email_is_queued_in_the_outbox(order_services):
    order_id = new_order()
    key = new_key()
    response = order_services.post_response("/notification/emails", email_body(order_id), idempotency_key=key)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"message_id", "order_id", "to", "status"}
    assert body["message_id"].startswith("msg_")
    assert body["order_id"] == order_id
    assert body["to"] == "ada@example.com"
    assert body["status"] == "queued"

    replay = order_services.post_response("/notification/emails", email_body(order_id), idempotency_key=key)
    assert (replay.status_code, replay.content) == (201, response.content)

    outbox = order_services.get_response("/notification/outbox", params={"order_id": order_id})
    assert outbox.status_code == 200
    [message] = outbox.json()["messages"]
    assert message["message_id"] == body["message_id"]
    assert message["subject"] == f"Your order {order_id}"
    assert message["body"] == "Thank you for your order."
    assert message["status"] == "queued"

    entries = order_services.audit(order_id)
    assert ledger(entries) == [("notification", "email", "succeeded")]
    assert entries[0]["details"]["message_id"] == body["message_id"]


def test_outbox_of_an_unknown_order_is_empty(order_services):
    response = order_services.get_response("/notification/outbox", params={"order_id": new_order()})
    assert response.json() == {"messages": []}
