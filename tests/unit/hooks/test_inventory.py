from __future__ import annotations

import uuid

import pytest

from airflow_order_provider.exceptions import ItemDiscontinuedError, OutOfStockError, RegionNotServicedError
from airflow_order_provider.hooks.inventory import InventoryHook
from harness.orders import ledger


def reserve(order_id, items, region="eu-west"):
    return InventoryHook().reserve(
        order_id=order_id, items=items, region=region, idempotency_key=f"{order_id}:inventory.reserve"
    )


def test_reserve_holds_stock_and_release_returns_it(service_connections, order_id):
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    hook = InventoryHook()
    before = hook.get_stock(sku)["available"]
    reservation = reserve(order_id, [{"sku": sku, "quantity": 3, "unit_price": 100}])
    assert reservation["status"] == "held"
    assert hook.get_stock(sku)["available"] == before - 3
    released = hook.release(
        reservation_id=reservation["reservation_id"], reason="test", idempotency_key=f"{order_id}:rel"
    )
    assert released["status"] == "released"
    assert hook.get_stock(sku)["available"] == before
    assert ledger(service_connections, order_id) == [
        ("inventory", "reserve", "succeeded"),
        ("inventory", "release", "succeeded"),
    ]


def test_discontinued_item(service_connections, order_id):
    with pytest.raises(ItemDiscontinuedError):
        reserve(order_id, [{"sku": "SKU-DISCONTINUED", "quantity": 1}])


def test_unserviced_region(service_connections, order_id):
    with pytest.raises(RegionNotServicedError):
        reserve(order_id, [{"sku": "SKU-RED-MUG", "quantity": 1}], region="unserviced")


def test_out_of_stock_reserves_nothing(service_connections, order_id):
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    before = InventoryHook().get_stock(sku)["available"]
    with pytest.raises(OutOfStockError):
        reserve(order_id, [{"sku": sku, "quantity": 1}, {"sku": "SKU-OUT-OF-STOCK", "quantity": 1}])
    assert InventoryHook().get_stock(sku)["available"] == before
