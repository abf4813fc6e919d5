"""Alerts to operations must survive a passing fault of the notification service."""

from __future__ import annotations

from airflow_order_provider.notifications import alerts
from harness.orders import OPS_EMAIL


def test_an_alert_email_is_retried_through_a_passing_outage_and_sent_once(service_connections, order_id, monkeypatch):
    monkeypatch.setattr(alerts, "ALERT_EMAIL_WAITS", (0.1, 0.1, 0.1))
    # seed 11 at 70 %: the first two calls are lost (503 after the outbox took the first), the third answers
    service_connections.set_faults("notification", error_rate=0.7, seed=11, phase="after")
    alerts.send_alert_email(order_id=order_id, subject="MANUAL INTERVENTION NEEDED: test", body="b",
                            idempotency_key=f"{order_id}:alert.test", alert_email=OPS_EMAIL)
    service_connections.clear_faults()
    outbox = service_connections.get(f"/notification/outbox?order_id={order_id}")["messages"]
    assert [m["subject"] for m in outbox] == ["MANUAL INTERVENTION NEEDED: test"]


def test_an_alert_that_cannot_be_emailed_gives_up_without_raising(service_connections, order_id, monkeypatch):
    monkeypatch.setattr(alerts, "ALERT_EMAIL_WAITS", (0.05, 0.05))
    service_connections.set_faults("notification", error_rate=1.0, seed=1)
    before = service_connections.received()["notification"]
    alerts.send_alert_email(order_id=order_id, subject="s", body="b", idempotency_key=f"{order_id}:alert.x",
                            alert_email=OPS_EMAIL)
    assert service_connections.received()["notification"] - before == 3  # three tries, then it gave up


def test_a_cancel_read_while_waiting_for_the_carrier_is_no_incident():
    """Seen in the e2e run: the pickup wait, resumed by its trigger's cancel event, raised the saga's
    generic SagaCancelledError for "order None", and operations got "task wait_for_dispatch failed"."""
    from airflow_order_provider.exceptions import OrderCancelledError
    from airflow_order_provider.notifications.alerts import describe_alert
    from airflow_order_provider.sensors.shipping import WaitForDispatchSensor

    sensor = WaitForDispatchSensor(task_id="wait_for_dispatch", order_id=None, shipment_id="shp-1")
    sensor.order_id = None  # as resumed from the triggerer, before anything read the order
    error = None
    try:
        sensor.execute_complete({}, {"status": "cancelled", "order_id": "ord-7", "cancel_request": {"reason": "r"}})
    except Exception as raised:
        error = raised
    assert isinstance(error, OrderCancelledError) and "order ord-7 cancelled" in str(error), error
    assert describe_alert({"task": sensor, "exception": error}) is None
