"""Inventory step and its compensation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.base import OrderCompensationOperator, OrderStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class ReserveInventoryOperator(OrderStepOperator):
    """
    Hold stock for every line of the order, all or nothing.

    Pushes ``{"reservation_id", "warehouse_id", "status", "expires_at"}``.

    :param order_id: the order. (templated)
    :param items: ``[{"sku": ..., "quantity": ...}, ...]``. (templated)
    :param region: the shipping region, which picks the warehouse. (templated)
    :param priority: ``normal`` or ``high``; empty or None for ``normal``, or ``high`` when the
        order's ship deadline is near. (templated)
    :param conn_id: inventory service connection (default ``order_inventory_default``).
    """

    service = "inventory"
    action = "inventory.reserve"
    template_fields: Sequence[str] = (*OrderStepOperator.template_fields, "items", "region", "priority")

    def __init__(
        self, *, items: list[dict[str, Any]] | str, region: str, priority: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.items = items
        self.region = region
        self.priority = priority

    def call_service(self, context: Context) -> dict[str, Any]:
        reservation = self.hook.reserve(
            order_id=self.order_id,
            items=list(self.items),
            region=self.region,
            priority=self.priority or ("high" if self.ship_deadline_near(context) else "normal"),
            idempotency_key=self.idempotency_key,
        )
        self.log.info("Reserved stock for order %s: %s", self.order_id, reservation["reservation_id"])
        return {key: reservation.get(key) for key in ("reservation_id", "warehouse_id", "status", "expires_at")}


class ReleaseInventoryOperator(OrderCompensationOperator):
    """
    Compensation of :class:`ReserveInventoryOperator`: give the reserved stock back.

    Pushes ``{"reservation_id", "status"}``.

    :param order_id: the order. (templated)
    :param reservation_id: the reservation to release; when empty, every reservation of the order
        still held. (templated)
    :param reason: why. (templated)
    :param conn_id: inventory service connection (default ``order_inventory_default``).
    """

    service = "inventory"
    action = "inventory.release"
    id_field = "reservation_id"
    settled_statuses = frozenset({"released", "expired"})
    template_fields: Sequence[str] = (*OrderCompensationOperator.template_fields, "reservation_id")

    def __init__(self, *, reservation_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reservation_id = reservation_id

    def find_for_order(self, order_id: str) -> list[dict[str, Any]]:
        return self.hook.reservations_for_order(order_id)

    def get_record(self, object_id: str) -> dict[str, Any]:
        return self.hook.get_reservation(object_id)

    def undo(self, object_id: str) -> dict[str, Any]:
        released = self.hook.release(
            reservation_id=object_id, reason=self.reason, idempotency_key=self.idempotency_key
        )
        self.log.info("Released reservation %s of order %s", object_id, self.order_id)
        return {key: released.get(key) for key in ("reservation_id", "status")}

    def execute(self, context: Context) -> dict[str, Any]:
        return self.compensate(self.reservation_id)
