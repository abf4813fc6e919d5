"""Inventory step and its compensation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.base import OrderServiceOperator
from airflow_order_provider.policies import INVENTORY

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.hooks.inventory import InventoryHook


class _InventoryOperator(OrderServiceOperator):
    policy = INVENTORY

    def _hook_class(self) -> type[InventoryHook]:
        from airflow_order_provider.hooks.inventory import InventoryHook

        return InventoryHook


class ReserveInventoryOperator(_InventoryOperator):
    """
    Hold stock for every line of the order, all or nothing.

    Pushes ``{"reservation_id", "warehouse_id", "status", "expires_at"}``.

    :param order_id: the order. (templated)
    :param items: ``[{"sku": ..., "quantity": ...}, ...]``. (templated)
    :param region: the shipping region, which picks the warehouse. (templated)
    :param priority: ``normal`` or ``high``. (templated)
    :param conn_id: inventory service connection (default ``order_inventory_default``).
    """

    action = "inventory.reserve"
    template_fields: Sequence[str] = ("order_id", "items", "region", "priority")

    def __init__(
        self, *, items: list[dict[str, Any]] | str, region: str, priority: str = "normal", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.items = items
        self.region = region
        self.priority = priority

    def execute(self, context: Context) -> dict[str, Any]:
        reservation = self.hook.reserve(
            order_id=self.order_id,
            items=list(self.items),
            region=self.region,
            priority=self.priority,
            idempotency_key=self.idempotency_key,
        )
        self.log.info("Reserved stock for order %s: %s", self.order_id, reservation["reservation_id"])
        return {key: reservation.get(key) for key in ("reservation_id", "warehouse_id", "status", "expires_at")}


class ReleaseInventoryOperator(_InventoryOperator):
    """
    Compensation of :class:`ReserveInventoryOperator`: give the reserved stock back.

    Pushes ``{"reservation_id", "status"}``.

    :param order_id: the order. (templated)
    :param reservation_id: the reservation to release. (templated)
    :param reason: why. (templated)
    :param conn_id: inventory service connection (default ``order_inventory_default``).
    """

    action = "inventory.release"
    template_fields: Sequence[str] = ("order_id", "reservation_id", "reason")
    ui_color = "#fdecea"

    def __init__(self, *, reservation_id: str, reason: str = "order cancelled", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reservation_id = reservation_id
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        released = self.hook.release(
            reservation_id=self.reservation_id, reason=self.reason, idempotency_key=self.idempotency_key
        )
        self.log.info("Released reservation %s of order %s", self.reservation_id, self.order_id)
        return {key: released.get(key) for key in ("reservation_id", "status")}
