"""One hook per order service, on a shared HTTP base (:mod:`airflow_order_provider.hooks.base`)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_order_provider.hooks.base import OrderServiceHook

HOOK_CLASSES = {
    "payment": "airflow_order_provider.hooks.payment.PaymentHook",
    "inventory": "airflow_order_provider.hooks.inventory.InventoryHook",
    "shipping": "airflow_order_provider.hooks.shipping.ShippingHook",
    "notification": "airflow_order_provider.hooks.notification.NotificationHook",
}


def hook_class_for(service: str) -> type[OrderServiceHook]:
    """The hook class of a service, imported on demand (operators never import hooks at parse time)."""
    module, _, name = HOOK_CLASSES[service].rpartition(".")
    return getattr(import_module(module), name)
