from __future__ import annotations

from airflow_order_provider.hooks.notification import NotificationHook
from harness.orders import ledger


def test_send_email_lands_in_the_outbox_once(service_connections, order_id):
    hook = NotificationHook()
    sent = [
        hook.send_email(order_id=order_id, to="ada@example.com", subject="Hi", body="Hello",
                        idempotency_key=f"{order_id}:notification.confirmation")
        for _ in range(2)
    ]
    assert sent[0] == sent[1] and sent[0]["status"] == "queued"
    outbox = service_connections.get(f"/notification/outbox?order_id={order_id}")["messages"]
    assert [(m["to"], m["subject"]) for m in outbox] == [("ada@example.com", "Hi")]
    assert ledger(service_connections, order_id) == [("notification", "email", "succeeded")]
