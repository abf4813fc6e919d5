"""
The wait for the carrier's pickup in the triggerer, and the hook's asynchronous path beneath it,
against real reference services over loopback; the hook's handling of a 503 and of a slow answer
against the services answered in process (``service_double``).

Shipments that must stay ``scheduled`` come from the session's services (dispatch after 5 s);
shipments that must reach ``dispatched`` come from services started here with a 0.5 s dispatch
delay, which also take this module's injected faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from importlib import import_module

import httpx
import pytest
from order_services.errors import SERVICE_UNAVAILABLE, SHIPMENT_NOT_FOUND, error_body

from airflow_order_provider.exceptions import (
    ServiceAuthenticationError,
    ServiceConnectionError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    ShipmentNotFoundError,
)
from airflow_order_provider.hooks.shipping import ShippingHook
from airflow_order_provider.triggers.shipping import ShipmentDispatchedTrigger, dispatch_summary
from tests.unit.conftest import FAST_DISPATCH_DELAY, schedule_shipment

CLASSPATH = "airflow_order_provider.triggers.shipping.ShipmentDispatchedTrigger"








def first_event(trigger: ShipmentDispatchedTrigger, within: float = 10.0) -> dict:
    """The payload of the trigger's first event, waiting at most ``within`` seconds."""

    async def run() -> dict:
        events = trigger.run()
        try:
            event = await asyncio.wait_for(events.__anext__(), within)
        finally:
            await events.aclose()
        return event.payload

    return asyncio.run(run())


def no_event_within(trigger: ShipmentDispatchedTrigger, seconds: float) -> None:
    """Run the trigger for ``seconds``: it must neither fire nor raise. Then cancel it."""

    async def run() -> None:
        events = trigger.run()
        pending = asyncio.ensure_future(events.__anext__())
        done, _ = await asyncio.wait({pending}, timeout=seconds)
        assert not done, f"the trigger fired or raised: {pending!r}"
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        await events.aclose()

    asyncio.run(run())


# -- the hook's asynchronous path -----------------------------------------------------------------


def test_async_get_shipment_answers_as_the_sync_one(service_connections, order_id):
    shipment = schedule_shipment(order_id)
    hook = ShippingHook()
    answer = asyncio.run(hook.async_get_shipment(shipment["shipment_id"]))
    assert answer == hook.get_shipment(shipment["shipment_id"])
    assert answer["order_id"] == order_id and answer["status"] == "scheduled"


def test_async_unknown_shipment_is_a_typed_not_found(service_connections):
    with pytest.raises(ShipmentNotFoundError) as raised:
        asyncio.run(ShippingHook().async_get_shipment("shp_does_not_exist"))
    assert raised.value.status_code == 404
    assert raised.value.service == "shipping" and raised.value.operation == "get shipment"


def test_async_wrong_api_key_is_an_authentication_error(order_services, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WRONG_KEY", f"http://:not-the-key@{order_services.host}:{order_services.port}")
    with pytest.raises(ServiceAuthenticationError) as raised:
        asyncio.run(ShippingHook(conn_id="wrong_key").async_get_shipment("shp_x"))
    assert raised.value.status_code == 401


def test_async_503_is_transient(service_double):
    # What the services answer while a fault is injected (order_services.middleware).
    service_double.answer = lambda request: httpx.Response(
        503, json=error_body(SERVICE_UNAVAILABLE, "shipping service unavailable (injected fault)")
    )
    with pytest.raises(ServiceUnavailableError) as raised:
        asyncio.run(ShippingHook().async_get_shipment("shp_x"))
    assert raised.value.status_code == 503
    assert raised.value.error_type == SERVICE_UNAVAILABLE
    (request,) = service_double.requests
    assert request.url.path == "/shipping/shipments/shp_x"
    assert request.headers["Authorization"] == f"Bearer {service_double.API_KEY}"


def test_async_slow_answer_is_a_timeout_from_the_connection(service_double, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ORDER_SHIPPING_DEFAULT", f"{service_double.URI}?timeout=0.3")

    def too_slow(request: httpx.Request) -> httpx.Response:
        assert request.extensions["timeout"]["read"] == 0.3  # the connection's timeout is what the request waits
        raise httpx.ReadTimeout("no answer", request=request)

    service_double.answer = too_slow
    with pytest.raises(ServiceTimeoutError, match="no answer within 0.3 s"):
        asyncio.run(ShippingHook().async_get_shipment("shp_x"))
    assert len(service_double.requests) == 1


def test_async_nothing_listening_is_a_connection_error(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_ORDER_SHIPPING_DEFAULT", f"http://:key@127.0.0.1:{port}")
    with pytest.raises(ServiceConnectionError, match="cannot reach http://127.0.0.1"):
        asyncio.run(ShippingHook().async_get_shipment("shp_x"))


def test_async_path_never_logs_the_api_key(service_double, caplog, capfd):
    service_double.answer = lambda request: httpx.Response(
        404, json=error_body(SHIPMENT_NOT_FOUND, "shipment shp_x not found")
    )
    caplog.set_level(logging.DEBUG)
    hook = ShippingHook()
    with pytest.raises(ShipmentNotFoundError):
        asyncio.run(hook.async_get_shipment("shp_x"))
    assert service_double.requests[0].headers["Authorization"] == f"Bearer {service_double.API_KEY}"
    logged = caplog.text + "".join(capfd.readouterr())  # Airflow's structlog writes to stdout
    assert "get shipment: GET /shipping/shipments/shp_x" in logged
    assert service_double.API_KEY not in logged
    assert service_double.API_KEY not in repr(hook._async_target)


# -- the trigger ----------------------------------------------------------------------------------


def test_serialize_round_trip():
    trigger = ShipmentDispatchedTrigger(shipment_id="shp_1", order_id="ord-1", conn_id=None, poll_interval=2)
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {"shipment_id": "shp_1", "order_id": "ord-1", "conn_id": None, "poll_interval": 2.0}
    assert json.loads(json.dumps(kwargs)) == kwargs
    module, _, name = classpath.rpartition(".")
    again = getattr(import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)


def test_fires_dispatched_once_the_carrier_picks_up(fast_connections, order_id):
    shipment = schedule_shipment(order_id)
    assert shipment["status"] == "scheduled"
    trigger = ShipmentDispatchedTrigger(shipment_id=shipment["shipment_id"], order_id=order_id, poll_interval=0.2)
    started = time.monotonic()
    event = first_event(trigger, within=10)
    assert event == {
        "status": "dispatched",
        "shipment": {
            "shipment_id": shipment["shipment_id"],
            "order_id": order_id,
            "tracking_number": shipment["tracking_number"],
            "carrier": shipment["carrier"],
            "status": "dispatched",
            "dispatched_at": shipment["dispatch_at"],
        },
    }
    assert time.monotonic() - started < 5
    assert [(e["service"], e["operation"]) for e in fast_connections.audit(order_id)] == [
        ("inventory", "reserve"), ("shipping", "schedule"),
    ]


def test_cancelled_shipment_is_an_error_event(service_connections, order_id):
    shipment = schedule_shipment(order_id)
    ShippingHook().cancel(
        shipment_id=shipment["shipment_id"], reason="test", idempotency_key=f"{order_id}:shipping.cancel"
    )
    event = first_event(ShipmentDispatchedTrigger(shipment_id=shipment["shipment_id"], order_id=order_id))
    assert event["status"] == "error"
    assert event["error_type"] == "ShipmentNotDispatchedError"
    assert "is cancelled: it will not be dispatched" in event["message"]
    assert event["shipment"]["status"] == "cancelled"
    assert "address" not in event["shipment"]


def test_unknown_shipment_is_an_error_event(service_connections, order_id):
    event = first_event(ShipmentDispatchedTrigger(shipment_id="shp_does_not_exist", order_id=order_id))
    assert event["status"] == "error"
    assert event["error_type"] == "ShipmentNotFoundError"
    assert event["status_code"] == 404
    assert "not found" in event["message"]


def test_another_orders_shipment_is_an_error_event(service_connections, order_id):
    shipment = schedule_shipment(order_id)
    event = first_event(ShipmentDispatchedTrigger(shipment_id=shipment["shipment_id"], order_id="ord-someone-else"))
    assert event["status"] == "error"
    assert f"belongs to order {order_id}, not ord-someone-else" in event["message"]


def test_wrong_api_key_is_an_error_event(order_services, monkeypatch, order_id):
    monkeypatch.setenv("AIRFLOW_CONN_WRONG_KEY", f"http://:not-the-key@{order_services.host}:{order_services.port}")
    event = first_event(ShipmentDispatchedTrigger(shipment_id="shp_x", order_id=order_id, conn_id="wrong_key"))
    assert event["status"] == "error" and event["status_code"] == 401


def test_missing_connection_is_an_error_event_not_a_crash(order_id):
    event = first_event(ShipmentDispatchedTrigger(shipment_id="shp_x", order_id=order_id, conn_id="no_such_conn"))
    assert event["status"] == "error"
    assert "no_such_conn" in event["message"]


def test_keeps_polling_through_a_shipping_outage(fast_connections, order_id, caplog, capfd):
    """503s from the shipping service only delay the wait: logged, polled again, never raised."""
    shipment = schedule_shipment(order_id)
    time.sleep(FAST_DISPATCH_DELAY + 0.1)  # dispatched by now: only the outage keeps the trigger waiting
    fast_connections.set_faults("shipping", error_rate=1.0, seed=3)
    trigger = ShipmentDispatchedTrigger(shipment_id=shipment["shipment_id"], order_id=order_id, poll_interval=0.2)
    caplog.set_level(logging.WARNING)
    no_event_within(trigger, 1.0)
    logged = caplog.text + "".join(capfd.readouterr())  # Airflow's structlog writes to stdout
    polls = [line for line in logged.splitlines() if "ServiceUnavailableError" in line]
    assert len(polls) >= 3, logged
    assert "asking again in 0.2 s" in polls[0]
    fast_connections.clear_faults()
    event = first_event(trigger, within=5)
    assert event["status"] == "dispatched"
    assert event["shipment"] == dispatch_summary(ShippingHook().get_shipment(shipment["shipment_id"]))


def test_a_payment_outage_does_not_concern_the_wait(fast_connections, order_id):
    shipment = schedule_shipment(order_id)
    fast_connections.set_faults("payment", error_rate=1.0, seed=3)
    event = first_event(
        ShipmentDispatchedTrigger(shipment_id=shipment["shipment_id"], order_id=order_id, poll_interval=0.2)
    )
    assert event["status"] == "dispatched"
