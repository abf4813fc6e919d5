from __future__ import annotations

import pytest

from airflow_order_provider.exceptions import AddressUndeliverableError
from airflow_order_provider.hooks.inventory import InventoryHook
from airflow_order_provider.hooks.shipping import ShippingHook
from harness.orders import ledger

ADDRESS = {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London",
           "postal_code": "SW1Y 4JH", "country": "GB", "region": "eu-west"}


def reservation(order_id):
    return InventoryHook().reserve(
        order_id=order_id, items=[{"sku": "SKU-RED-MUG", "quantity": 1}], region="eu-west",
        idempotency_key=f"{order_id}:inventory.reserve",
    )["reservation_id"]


def schedule(order_id, address=ADDRESS, service_level="standard"):
    return ShippingHook().schedule(
        order_id=order_id, reservation_id=reservation(order_id), address=address,
        service_level=service_level, idempotency_key=f"{order_id}:shipping.schedule",
    )


def test_schedule_then_cancel(service_connections, order_id):
    shipment = schedule(order_id, service_level="express")
    assert shipment["status"] == "scheduled" and shipment["tracking_number"]
    assert shipment["service_level"] == "express"
    assert ShippingHook().get_shipment(shipment["shipment_id"])["address"]["line1"] == ADDRESS["line1"]
    cancelled = ShippingHook().cancel(
        shipment_id=shipment["shipment_id"], reason="test", idempotency_key=f"{order_id}:shipping.cancel"
    )
    assert cancelled["status"] == "cancelled"
    assert ledger(service_connections, order_id) == [
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("shipping", "cancel", "succeeded"),
    ]


def test_undeliverable_address(service_connections, order_id):
    with pytest.raises(AddressUndeliverableError):
        schedule(order_id, address={**ADDRESS, "line1": "1 UNDELIVERABLE Lane"})
    assert ledger(service_connections, order_id)[-1] == ("shipping", "schedule", "failed")
