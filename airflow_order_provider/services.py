"""
The order services, the one list of them: ``{service: (hook class name, hook name)}``.

Below the models and the hooks (it imports nothing of the provider): the order model names the
services a step may be paused for, the hooks and the provider info build on the same list. The
hook of ``<service>`` lives in ``airflow_order_provider.hooks.<service>``; its connection type is
``order_<service>``.
"""

from __future__ import annotations

SERVICES: dict[str, tuple[str, str]] = {
    "payment": ("PaymentHook", "Order Payment Service"),
    "inventory": ("InventoryHook", "Order Inventory Service"),
    "shipping": ("ShippingHook", "Order Shipping Service"),
    "notification": ("NotificationHook", "Order Notification Service"),
}
