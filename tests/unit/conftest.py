"""Fixtures of the unit tests that need shipments the carrier picks up quickly."""

from __future__ import annotations

import time

import pytest
from order_services.testing import start_order_services

#: Seconds after which the fast services' carrier picks a shipment up.
FAST_DISPATCH_DELAY = 0.5
SERVICES = ("payment", "inventory", "shipping", "notification")
ADDRESS = {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London",
           "postal_code": "SW1Y 4JH", "country": "GB", "region": "eu-west"}


@pytest.fixture(scope="module")
def fast_services(tmp_path_factory):
    """Reference services that dispatch a shipment 0.5 s after it is scheduled."""
    workdir = tmp_path_factory.mktemp("fast-dispatch")
    server = start_order_services(
        workdir / "order-services.db", api_key="test-key", dispatch_delay=FAST_DISPATCH_DELAY,
        log_path=workdir / "order-services.log",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_connections(fast_services, monkeypatch):
    """The provider's default connections pointed at :func:`fast_services`; faults cleared after."""
    for service in SERVICES:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_ORDER_{service.upper()}_DEFAULT",
            f"http://:{fast_services.api_key}@{fast_services.host}:{fast_services.port}",
        )
    try:
        yield fast_services
    finally:
        fast_services.clear_faults()


def schedule_shipment(order_id: str) -> dict:
    """Reserve a mug and book its shipment, through the default connections."""
    from airflow_order_provider.hooks.inventory import InventoryHook
    from airflow_order_provider.hooks.shipping import ShippingHook

    reservation = InventoryHook().reserve(
        order_id=order_id, items=[{"sku": "SKU-RED-MUG", "quantity": 1}], region="eu-west",
        idempotency_key=f"{order_id}:inventory.reserve",
    )
    return ShippingHook().schedule(
        order_id=order_id, reservation_id=reservation["reservation_id"], address=ADDRESS,
        service_level="standard", idempotency_key=f"{order_id}:shipping.schedule",
    )


def dispatched_shipment(order_id: str) -> dict:
    """A shipment of the fast services, once the carrier has picked it up."""
    shipment = schedule_shipment(order_id)
    time.sleep(FAST_DISPATCH_DELAY + 0.1)
    return shipment
