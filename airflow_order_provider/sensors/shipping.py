"""Waiting for the carrier to pick up a shipment."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_order_provider.clock import order_checkpoint
from airflow_order_provider.exceptions import (
    BusinessRuleError,
    OrderCancelledError,
    OrderServiceError,
    TransientServiceError,
)
from airflow_order_provider.operators.base import OrderSagaTask
from airflow_order_provider.policies import order_times, policy_for, with_policy_defaults
from airflow_order_provider.saga.failure import StepFailure
from airflow_order_provider.triggers.shipping import (
    CANCELLED,
    DISPATCHED,
    ShipmentDispatchedTrigger,
    dispatch_problem,
    dispatch_summary,
)
from airflow_order_provider.version_compat import AirflowFailException, fail_at_once_on

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.hooks.shipping import ShippingHook
    from airflow_order_provider.saga.checkpoint import Checkpoint

#: The poll interval is never below this, however small ``time_scale`` is.
MIN_POLL_INTERVAL = timedelta(seconds=1)

#: A pickup due within this long is waited for in the worker instead of in the triggerer. A
#: deferral costs seconds of scheduling, and a trigger that fires before the scheduler has processed
#: the deferring try's exit (seconds under load) can meet an Airflow 3.3.2 race in which the
#: scheduler fails the resumed task ("finished with state success, but the task instance's state
#: attribute is queued"). Not scaled: both costs are Airflow's, in wall-clock time.
DEFAULT_INLINE_WAIT = timedelta(seconds=5)


class ShipmentNotDispatchedError(OrderServiceError, AirflowFailException):
    """
    The shipment will never be dispatched: it was cancelled, does not exist, belongs to another
    order, or the shipping service refuses to say (e.g. a wrong API key). No retry can fix it.
    """


def default_dispatch_timeout() -> timedelta:
    """``dispatch_timeout`` of :class:`~airflow_order_provider.policies.OrderTimes`, scaled."""
    return order_times().scaled("dispatch_timeout")


def default_poll_interval() -> timedelta:
    return max(order_times().scaled("dispatch_poll_interval"), MIN_POLL_INTERVAL)


def _seconds_until(moment: str | None) -> float | None:
    """Seconds from now until an ISO 8601 time from a service (negative once past; None if unreadable)."""
    if not moment:
        return None
    try:
        when = datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - datetime.now(timezone.utc)).total_seconds()


def _waited_seconds(context: Context) -> float:
    started = getattr(context.get("ti"), "start_date", None)
    return (datetime.now(timezone.utc) - started).total_seconds() if started else 0.0


class WaitForDispatchSensor(OrderSagaTask, BaseSensorOperator):
    """
    Wait until the carrier has picked up the order's shipment.

    A pickup takes hours, so the sensor is deferrable by default, whatever
    ``[operators] default_deferrable`` says: it asks the shipping service once and, unless the
    shipment is already dispatched, hands the wait to the triggerer
    (:class:`~airflow_order_provider.triggers.shipping.ShipmentDispatchedTrigger`) and holds no
    worker slot. With ``deferrable=False`` it pokes from a worker instead (use
    ``mode="reschedule"`` to free the slot between pokes).

    A cancel of the order is honoured at every poll in either mode (the order's checkpoint),
    unless the carrier already has the parcel: the carrier's answer wins, the order completes.

    Transient trouble at the service (5xx, 429, timeouts) only means "ask again later". A cancelled
    or unknown shipment, one of another order, or a refused request fails the task with
    :class:`ShipmentNotDispatchedError`, never retried; no pickup within ``timeout`` fails it with
    Airflow's ``AirflowSensorTimeout``. A try that fails otherwise (a worker's death; Airflow
    3.3.2's scheduler failing a resumed deferral) is retried with the shipping service's retry
    policy: the wait only reads, and the retry asks the carrier again.

    Pushes ``{"shipment_id", "order_id", "tracking_number", "carrier", "status": "dispatched",
    "dispatched_at"}``.

    :param order_id: the order. (templated)
    :param shipment_id: the shipment to wait for. (templated)
    :param conn_id: shipping service connection (default ``order_shipping_default``).
    :param poll_interval: time between two questions to the service (``timedelta`` or seconds);
        default 60 s scaled by ``[order_provider] time_scale``, never below 1 s. Airflow's
        ``poke_interval`` is accepted as another name for it.
    :param timeout: how long to wait for the pickup (``timedelta`` or seconds); default 24 h
        scaled by ``[order_provider] time_scale``.
    :param deferrable: wait in the triggerer (default True).
    :param inline_wait: a pickup due within this long (``timedelta`` or seconds; default 5 s) is
        waited for in the worker, polling every ``poll_interval``, even when deferrable: cheaper
        than a deferral, and it avoids an Airflow 3.3.2 race of triggers that fire at once (see
        :data:`DEFAULT_INLINE_WAIT`). 0 always defers.
    """

    template_fields: Sequence[str] = ("order_id", "shipment_id")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        order_id: str | None = None,
        shipment_id: str | None = None,
        conn_id: str | None = None,
        saga: Any = None,
        inputs: dict[str, tuple[str, str | None]] | None = None,
        poll_interval: timedelta | float | None = None,
        timeout: timedelta | float | None = None,
        deferrable: bool = True,
        inline_wait: timedelta | float = DEFAULT_INLINE_WAIT,
        **kwargs: Any,
    ) -> None:
        poke_interval = kwargs.pop("poke_interval", None)
        if poll_interval is not None and poke_interval is not None:
            raise ValueError("Give poll_interval or poke_interval, not both: they are the same setting")
        interval = poll_interval if poll_interval is not None else poke_interval
        kwargs = with_policy_defaults(kwargs, policy_for("shipping").retry_defaults())
        super().__init__(
            poke_interval=interval if interval is not None else default_poll_interval(),
            timeout=timeout if timeout is not None else default_dispatch_timeout(),
            **kwargs,
        )
        self.order_id = order_id
        self.shipment_id = shipment_id
        self.conn_id = conn_id
        self.poll_interval = float(self.poke_interval)
        self.deferrable = deferrable
        self.inline_wait = (
            inline_wait.total_seconds() if isinstance(inline_wait, timedelta) else float(inline_wait)
        )
        if self.inline_wait < 0:
            raise ValueError(f"inline_wait must not be negative, got {inline_wait!r}")
        #: Seconds until the carrier's planned pickup, as of the last poke (None: unknown).
        self._pickup_due_in: float | None = None
        self.saga_init(saga, inputs)

    def checkpoint(self) -> Checkpoint:
        """The order's checkpoint while it waits: its cancel signal (the wait is off the clock)."""
        return order_checkpoint(str(self.order_id), self.task_id)

    @cached_property
    def hook(self) -> ShippingHook:
        """The shipping hook, created on first use (at run time, never at parse time)."""
        from airflow_order_provider.hooks.shipping import ShippingHook

        return ShippingHook(conn_id=self.conn_id)

    def _not_dispatched(self, message: str, **details: Any) -> ShipmentNotDispatchedError:
        details.setdefault("service", "shipping")
        details.setdefault("operation", "wait for dispatch")
        return ShipmentNotDispatchedError(message, **details)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """
        Ask once: a truthy ``PokeReturnValue`` (with the XCom) when dispatched, else False; a
        cancelled order fails the wait when the parcel is not with the carrier yet.
        """
        self._pickup_due_in = None
        try:
            shipment = self.hook.get_shipment(self.shipment_id)
        except TransientServiceError as error:
            self.log.warning(
                "Shipment %s of order %s: %s; asking again in %g s",
                self.shipment_id, self.order_id, error, self.poll_interval,
            )
            return False
        except BusinessRuleError as error:
            raise self._not_dispatched(
                error.message, status_code=error.status_code, error_type=error.error_type
            ) from error
        problem = dispatch_problem(shipment, self.order_id)
        if problem:
            raise self._not_dispatched(problem)
        if shipment.get("status") == DISPATCHED:
            summary = dispatch_summary(shipment)
            self.log.info(
                "Shipment %s of order %s was dispatched at %s",
                self.shipment_id, self.order_id, summary["dispatched_at"],
            )
            return PokeReturnValue(is_done=True, xcom_value=summary)
        cancel = self.checkpoint().cancel_request()
        if cancel:
            raise self._cancelled(context, cancel)
        self._pickup_due_in = _seconds_until(shipment.get("dispatch_at"))
        self.log.info(
            "Shipment %s of order %s is %s, carrier pickup planned at %s",
            self.shipment_id, self.order_id, shipment.get("status"), shipment.get("dispatch_at"),
        )
        return False

    def _wait_inline_for_a_pickup_due_soon(self, context: Context) -> PokeReturnValue | bool:
        """
        Poke again at the planned pickup when it is due within ``inline_wait`` (and every
        ``poll_interval`` until then, so that a cancel is seen as soon as in the triggerer); False
        when it is not, or has not happened by ``inline_wait`` (plus a poll's grace for clock skew).
        """
        due_in = self._pickup_due_in
        if due_in is None or due_in > self.inline_wait:
            return False
        self.log.info("The carrier's pickup is due in %.1f s: waiting for it here, not in the triggerer", due_in)
        give_up = time.monotonic() + self.inline_wait + MIN_POLL_INTERVAL.total_seconds()
        while time.monotonic() < give_up:
            time.sleep(min(max(due_in, 0.2) + 0.05, self.poll_interval, max(give_up - time.monotonic(), 0.0)))
            done = self.poke(context)
            if done or self._pickup_due_in is None:
                return done
            due_in = self._pickup_due_in
        return False

    def execute(self, context: Context) -> dict[str, Any] | None:
        with fail_at_once_on(policy_for("shipping").is_never_retried):  # the retry policy's FAIL before 3.3
            return self._execute_wait(context)

    def _execute_wait(self, context: Context) -> dict[str, Any] | None:
        self.prepare(context)
        if not self.deferrable:
            summary = super().execute(context)
            return {**summary, "waited_seconds": _waited_seconds(context)} if summary else summary
        done = self.poke(context) or self._wait_inline_for_a_pickup_due_soon(context)
        if done:
            summary = done.xcom_value if isinstance(done, PokeReturnValue) else None
            return {**summary, "waited_seconds": _waited_seconds(context)} if summary else summary
        self.log.info(
            "Waiting up to %s for the carrier to pick up shipment %s of order %s, in the triggerer",
            timedelta(seconds=self.timeout), self.shipment_id, self.order_id,
        )
        self.defer(
            trigger=ShipmentDispatchedTrigger(
                shipment_id=str(self.shipment_id),
                order_id=str(self.order_id),
                conn_id=self.conn_id,
                poll_interval=self.poll_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def _cancelled(self, context: Context, cancel: dict[str, Any]) -> OrderCancelledError:
        error = self.checkpoint().cancelled(cancel, while_="while waiting for the carrier")
        if context.get("ti") is not None:
            StepFailure(step=self.task_id, service="shipping", error_type="OrderCancelledError", message=str(error),
                        never_retried=True, waited_seconds=_waited_seconds(context)).push(context["ti"])
        return error

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Turn the trigger's event into the pickup's summary, or a clear failure."""
        with fail_at_once_on(policy_for("shipping").is_never_retried):  # the retry policy's FAIL before 3.3
            return self._event_outcome(context, event)

    def _event_outcome(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") == CANCELLED:
            # Resumed from the triggerer: the order is the event's (prepare() did not run).
            self.order_id = self.order_id or event.get("order_id")
            raise self._cancelled(context, event.get("cancel_request") or {})
        if event.get("status") == DISPATCHED:
            summary = dispatch_summary(event.get("shipment") or {})
            self.log.info(
                "Shipment %s of order %s was dispatched at %s",
                self.shipment_id, self.order_id, summary["dispatched_at"],
            )
            # the workflow clock leaves the carrier's time out (see OrderStepOperator)
            return {**summary, "waited_seconds": _waited_seconds(context)}
        raise self._not_dispatched(
            event.get("message") or f"unexpected event from the trigger: {event!r}",
            status_code=event.get("status_code"),
            error_type=event.get("error_type"),
        )
