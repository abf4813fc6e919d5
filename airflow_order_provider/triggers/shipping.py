"""
Waiting for the carrier's pickup in the triggerer.

A shipment is ``scheduled`` when it is booked and becomes ``dispatched`` when the carrier picks it
up, hours later; ``cancelled`` means it never will be. :func:`dispatch_problem` and
:func:`dispatch_summary` judge and trim a shipment for both the trigger and the sensor
(:mod:`airflow_order_provider.sensors.shipping`), so that the two modes agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_order_provider.exceptions import OrderServiceError, TransientServiceError

DISPATCHED = "dispatched"
#: Event status when the order was cancelled while it waited.
CANCELLED = "cancelled"
#: Statuses of a shipment that may still become ``dispatched``.
AWAITING_DISPATCH = frozenset({"scheduled"})

#: What the wait keeps of a shipment: small, and without the customer's address, because trigger
#: events and XComs are stored in Airflow's metadata database.
DISPATCH_FIELDS = ("shipment_id", "order_id", "tracking_number", "carrier", "status", "dispatched_at")


def dispatch_summary(shipment: dict[str, Any]) -> dict[str, Any]:
    """
    The shipment trimmed to :data:`DISPATCH_FIELDS`.

    The shipping service calls the pickup time ``dispatch_at`` (planned, then actual once the
    status is ``dispatched``); the summary names it ``dispatched_at``.
    """
    summary = {key: shipment.get(key) for key in DISPATCH_FIELDS}
    summary["dispatched_at"] = shipment.get("dispatched_at") or shipment.get("dispatch_at")
    return summary


def dispatch_problem(shipment: dict[str, Any], order_id: str | None = None) -> str | None:
    """
    Why this shipment will never be dispatched for the order, or None while it is or may be.

    :param shipment: the shipping service's answer for the shipment.
    :param order_id: the order the wait is for; a shipment of another order is a problem.
    """
    shipment_id = shipment.get("shipment_id")
    if order_id and shipment.get("order_id") and shipment["order_id"] != order_id:
        return f"shipment {shipment_id} belongs to order {shipment['order_id']}, not {order_id}"
    status = shipment.get("status")
    if status == DISPATCHED or status in AWAITING_DISPATCH:
        return None
    return f"shipment {shipment_id} of order {shipment.get('order_id')} is {status}: it will not be dispatched"


class ShipmentDispatchedTrigger(BaseTrigger):
    """
    Fires when the carrier has picked up the shipment, or when it never will.

    Polls the shipping service every ``poll_interval`` seconds. Transient trouble (5xx, 429,
    timeouts, connection errors) is logged and polling goes on. The trigger has no timeout of
    its own: the deferring task's timeout ends the wait.

    Events: ``{"status": "dispatched", "shipment": {...}}`` (see :func:`dispatch_summary`), or
    ``{"status": "error", "message", "error_type", "shipment_id"}`` when the shipment is cancelled,
    unknown, another order's, or the service refuses the request (e.g. a wrong API key).

    :param shipment_id: the shipment to wait for.
    :param order_id: the order it belongs to.
    :param conn_id: shipping service connection (default ``order_shipping_default``).
    :param poll_interval: seconds between two questions to the service.
    """

    def __init__(
        self,
        *,
        shipment_id: str,
        order_id: str,
        conn_id: str | None = None,
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.shipment_id = shipment_id
        self.order_id = order_id
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "shipment_id": self.shipment_id,
                "order_id": self.order_id,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    def _error(self, message: str, error_type: str, **details: Any) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": "error",
                "message": message,
                "error_type": error_type,
                "shipment_id": self.shipment_id,
                "order_id": self.order_id,
                **details,
            }
        )

    async def _cancel_request(self) -> dict[str, Any] | None:
        """The order's cancel signal (:mod:`airflow_order_provider.signals`), if it was sent."""
        from asgiref.sync import sync_to_async

        from airflow_order_provider.signals import cancel_request

        try:
            return await sync_to_async(cancel_request)(self.order_id)
        except Exception as error:  # a signal that cannot be read now is read at the next poll
            self.log.warning("Cannot read the cancel signal of order %s: %s", self.order_id, error)
            return None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the shipment is dispatched or never will be; never raises."""
        polls = 0
        try:
            from airflow_order_provider.hooks.shipping import ShippingHook

            hook = ShippingHook(conn_id=self.conn_id)
            while True:
                polls += 1
                try:
                    shipment = await hook.async_get_shipment(self.shipment_id)
                except TransientServiceError as error:
                    self.log.warning(
                        "Shipment %s of order %s: %s; asking again in %g s",
                        self.shipment_id, self.order_id, error, self.poll_interval,
                    )
                    shipment = None
                # The carrier's answer wins over a cancel: a dispatched parcel cannot be called back.
                if shipment is not None and shipment.get("status") == DISPATCHED and not dispatch_problem(
                    shipment, self.order_id
                ):
                    summary = dispatch_summary(shipment)
                    self.log.info(
                        "Shipment %s of order %s dispatched at %s (poll %d)",
                        self.shipment_id, self.order_id, summary["dispatched_at"], polls,
                    )
                    yield TriggerEvent({"status": DISPATCHED, "shipment": summary})
                    return
                cancel = await self._cancel_request()
                if cancel:
                    self.log.warning("Order %s was cancelled while waiting: %s", self.order_id, cancel.get("reason"))
                    yield TriggerEvent({"status": CANCELLED, "cancel_request": cancel, "order_id": self.order_id})
                    return
                if shipment is not None:
                    problem = dispatch_problem(shipment, self.order_id)
                    if problem:
                        self.log.error("Shipment %s: %s", self.shipment_id, problem)
                        yield self._error(
                            problem, "ShipmentNotDispatchedError", shipment=dispatch_summary(shipment)
                        )
                        return
                    self.log.info(
                        "Shipment %s of order %s is %s, carrier pickup planned at %s; asking again in %g s",
                        self.shipment_id, self.order_id, shipment.get("status"),
                        shipment.get("dispatch_at"), self.poll_interval,
                    )
                await asyncio.sleep(self.poll_interval)
        except OrderServiceError as error:
            # The service answered and refused (404, 401...): no further poll can fix that.
            self.log.error("Shipment %s of order %s: %s", self.shipment_id, self.order_id, error)
            yield self._error(
                error.message, error.error_type, status_code=error.status_code, service_error=str(error)
            )
        except Exception as error:
            # A trigger that raises is retried by nobody; turn anything unexpected into an event.
            self.log.exception("Waiting for shipment %s failed", self.shipment_id)
            yield self._error(f"{type(error).__name__}: {error}", type(error).__name__)
