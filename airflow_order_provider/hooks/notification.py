"""Notification service hook: customer emails."""

from __future__ import annotations

from typing import Any

from airflow_order_provider.hooks.base import OrderServiceHook


class NotificationHook(OrderServiceHook):
    """
    Talks to the notification service.

    :param conn_id: connection to the notification service (default ``order_notification_default``).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "order_notification_default"
    conn_type = "order_notification"
    hook_name = "Order Notification Service"
    service = "notification"
    record_id_field = "message_id"
    live_statuses = frozenset({"queued", "sent"})

    def send_email(
        self, *, order_id: str, to: str, subject: str, body: str, idempotency_key: str
    ) -> dict[str, Any]:
        """Queue an email; returns ``message_id``."""
        return self.call(
            "POST",
            "/notification/emails",
            operation="email",
            idempotency_key=idempotency_key,
            json={"order_id": order_id, "to": to, "subject": subject, "body": body},
        )

    def records_for_order(self, order_id: str) -> list[dict[str, Any]]:
        """The order's messages in the outbox, oldest first."""
        return self.call("GET", "/notification/outbox", operation="find messages", params={"order_id": order_id})[
            "messages"
        ]
