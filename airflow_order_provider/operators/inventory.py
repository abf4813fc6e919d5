"""Inventory step and its compensation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_order_provider.operators.compensation import OrderCompensationOperator
from airflow_order_provider.operators.step import OrderStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.models import Order

RESERVATION_FIELDS = ("reservation_id", "warehouse_id", "status", "expires_at")


class ReserveInventoryOperator(OrderStepOperator):
    """
    Hold stock for every line of the order, all or nothing.

    Pushes ``{"reservation_id", "warehouse_id", "status", "expires_at", "completed_at"}``.

    :param order_id: the order. (templated)
    :param items: ``[{"sku": ..., "quantity": ...}, ...]``; default the order's lines. (templated)
    :param region: the shipping region, which picks the warehouse; default the order's. (templated)
    :param priority: ``normal`` or ``high``; empty or None for ``normal``, or ``high`` when the
        order's ship deadline was near when the step became ready (so every try asks the same).
        (templated)
    :param conn_id: inventory service connection (default ``order_inventory_default``).
    """

    service = "inventory"
    action = "inventory.reserve"
    template_fields: Sequence[str] = (*OrderStepOperator.template_fields, "items", "region", "priority")

    def __init__(
        self,
        *,
        items: list[dict[str, Any]] | str | None = None,
        region: str | None = None,
        priority: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.items = items
        self.region = region
        self.priority = priority

    def take_order(self, order: Order) -> None:
        super().take_order(order)
        self.items = self.items or [item.model_dump(mode="json") for item in order.items]
        self.region = self.region or order.shipping_address.region

    def call_service(self, context: Context) -> dict[str, Any]:
        priority = self.priority or ("high" if self.ship_deadline_near(context, self.ready_at(context)) else "normal")
        reservation = self.call_idempotent(
            lambda: self.hook.reserve(
                order_id=str(self.order_id),
                items=list(self.items),
                region=str(self.region),
                priority=priority,
                idempotency_key=self.idempotency_key,
            )
        )
        self.log.info("Reserved stock for order %s: %s", self.order_id, reservation["reservation_id"])
        return {key: reservation.get(key) for key in RESERVATION_FIELDS}


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
    result_fields = ("reservation_id", "status")
    template_fields: Sequence[str] = (*OrderCompensationOperator.template_fields, "reservation_id")
