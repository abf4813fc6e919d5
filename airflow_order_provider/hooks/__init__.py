"""One hook per order service, on a shared HTTP base (:mod:`airflow_order_provider.hooks.base`)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from airflow_order_provider.services import SERVICES

if TYPE_CHECKING:
    from airflow_order_provider.hooks.base import OrderServiceHook

__all__ = ["HOOK_CLASSES", "SERVICES", "hook_class_for"]

HOOK_CLASSES = {
    service: f"airflow_order_provider.hooks.{service}.{hook_class}" for service, (hook_class, _) in SERVICES.items()
}


def hook_class_for(service: str) -> type[OrderServiceHook]:
    """The hook class of a service, imported on demand (operators never import hooks at parse time)."""
    module, _, name = HOOK_CLASSES[service].rpartition(".")
    return getattr(import_module(module), name)
