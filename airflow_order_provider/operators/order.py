"""
The order-level tasks: validate the input, send high-value orders to approval, plan the
compensation, record the outcome.

The forward steps and their compensations live with their services (``payment.py``...); these
tasks tie them into one order. Their place in the order saga is :mod:`airflow_order_provider.order_saga`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_order_provider.exceptions import InvalidOrderError, OrderServiceError
from airflow_order_provider.operators.base import OrderSagaTask, OrderServiceOperator, hook_for
from airflow_order_provider.policies import order_times, policy_for
from airflow_order_provider.saga.planner import PLAN_KEY, PlanCompensationOperator, SagaCancelledOperator
from airflow_order_provider.version_compat import (
    AirflowFailException,
    BaseBranchOperator,
    DownstreamTasksSkipped,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.models import Order
    from airflow_order_provider.saga.failure import StepFailure

__all__ = [
    "PLAN_KEY",
    "CancelOrderOperator",
    "CheckOrderValueOperator",
    "CompleteOrderOperator",
    "PlanCompensationOperator",
    "RollForwardOrderOperator",
    "ValidateOrderOperator",
]


class ValidateOrderOperator(BaseOperator):
    """
    Check the order before any service is called, and push it, normalized, for the steps.

    A bad order fails this task at once (no retry) with a message that names every bad field. What
    it pushes is the order every step reads: whatever came in the run's conf (the trigger form,
    the REST API, the order API), the steps see the validated, normalized order.

    :param order: the order; defaults to the run's conf. (templated)
    """

    template_fields: Sequence[str] = ("order",)
    ui_color = "#f0f0f0"

    def __init__(self, *, order: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.order = order

    def execute(self, context: Context) -> dict[str, Any]:
        # The order model (pydantic) is built on first use, not when a DAG file is parsed.
        from airflow_order_provider.models import parse_order

        data = self.order if self.order is not None else context["dag_run"].conf
        order = parse_order(data)
        self.log.info(
            "Order %s is valid: %d line(s), %d %s, %s customer",
            order.order_id,
            len(order.items),
            order.total_amount,
            order.currency,
            order.customer_tier,
        )
        return self.normalized(order)

    @staticmethod
    def normalized(order: Order) -> dict[str, Any]:
        """What this task pushes for a valid order: the order as JSON, with its service level."""
        result = order.model_dump(mode="json")
        result["service_level"] = order.service_level
        return result

    @classmethod
    def saga_input(cls, conf: dict[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """
        The validated order a run's steps work on, computed from the run's conf exactly as this task
        computes it (the same pure function), so that each step gets it without reading this
        task's XCom back from the API server. None when this task was given its ``order`` instead
        of reading the conf, or the conf is no valid order (this task failed then, and no step
        runs): the steps then read the XCom.
        """
        if kwargs.get("order") is not None:
            return None
        from airflow_order_provider.models import parse_order

        try:
            return cls.normalized(parse_order(conf))
        except InvalidOrderError:
            return None


class OrderPlanCompensationOperator(PlanCompensationOperator):
    """
    The order's compensation planner: the saga's planner (latest step first), asking the services.

    A step that was attempted but has no proven result (its answer was lost on any try, its worker
    died, a cancel was read after an earlier try went through) is undone when its service has
    anything in effect for the order, whatever its last try's failure says. When the service
    cannot say, the compensation runs and finds out itself.
    """

    def may_have_taken_effect(self, step: str, saga_id: str, failure: StepFailure | None) -> bool:
        service = self.saga.step(step).service
        if service is None:
            return super().may_have_taken_effect(step, saga_id, failure)
        try:
            live = hook_for(service).live_for_order(saga_id)
        except OrderServiceError as error:
            if failure is not None and not failure.ambiguous and failure.try_number == 1:
                # Refused outright on its only try (a declined card, a wrong API key): nothing was done.
                self.log.warning("Cannot ask whether %s took effect (%s); its only try was refused: %s",
                                 step, error, failure.error_type)
                return False
            self.log.warning("Cannot ask whether %s took effect (%s): its compensation will check", step, error)
            return True
        self.log.info("%s has no proven result; in effect at the %s service: %s", step, service,
                      [r.get("status") for r in live] or "nothing")
        return bool(live)

    def default_exhausted_mode(self, step: str, context: Context) -> str:
        service = self.saga.step(step).service
        if service is None:
            return "compensate"
        order = context["ti"].xcom_pull(task_ids=self.saga.start.task_id) or {}
        return (order.get("on_retries_exhausted") or {}).get(service) or policy_for(service).on_retries_exhausted


class CheckOrderValueOperator(OrderSagaTask, BaseBranchOperator):
    """
    Send high-value orders to approval; the others go straight on.

    :param total_amount: the order's total in minor units; default the saga's order. (templated)
    :param step_task_id: the approval task, for orders above the threshold.
    :param next_task_id: the step after the approval, which every order takes.
    :param threshold: orders above it need approval; defaults to ``[order_provider]
        approval_threshold`` (100000).
    """

    template_fields: Sequence[str] = ("total_amount",)
    ui_color = "#f0f0f0"

    def __init__(
        self,
        *,
        step_task_id: str,
        next_task_id: str,
        total_amount: int | str | None = None,
        threshold: int | None = None,
        saga: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.total_amount = total_amount
        self.step_task_id = step_task_id
        self.next_task_id = next_task_id
        self.threshold = threshold
        self.order_id = None
        self.saga_init(saga, None)

    def take_order(self, order: dict[str, Any]) -> None:
        super().take_order(order)
        if self.total_amount in (None, ""):
            self.total_amount = order["total_amount"]

    def choose_branch(self, context: Context) -> list[str]:
        self.prepare(context)
        threshold = self.threshold if self.threshold is not None else order_times().approval_threshold
        if int(self.total_amount) > threshold:
            self.log.info("Total %s is above %s: the order needs approval", self.total_amount, threshold)
            return [self.step_task_id, self.next_task_id]
        self.log.info("Total %s is at or below %s: no approval needed", self.total_amount, threshold)
        return [self.next_task_id]


class CancelOrderOperator(SagaCancelledOperator):
    """
    Record the cancelled order once its compensations are done.

    Its XCom is the order's result: ``{"order_id", "status": "cancelled", "reason",
    "failed_step", "compensated": [...]}``. The run still ends failed: the order did not
    complete, and the failed step stays red in the grid.
    """


class CompleteOrderOperator(OrderSagaTask, BaseOperator):
    """
    Record the completed order: what was charged, reserved and shipped.

    Its XCom is the order's result: ``{"order_id", "status": "completed", "payment_id",
    "reservation_id", "shipment_id", "tracking_number", ..., "confirmation_sent"}``. An order
    whose confirmation email never went out still completes (operations are alerted by the
    confirmation task); ``confirmation_sent`` is then false. A cancel that arrived after the
    carrier picked the order up is reported as not honoured (``cancel_request``).

    :param order_id: the order. (templated)
    :param payment: the payment step's result. (templated)
    :param reservation: the inventory step's result. (templated)
    :param shipment: the shipping step's result. (templated)
    :param confirmation: the confirmation step's result, if it was sent. (templated)
    :param inputs: with the saga, where each of those results comes from.
    """

    template_fields: Sequence[str] = ("order_id", "payment", "reservation", "shipment", "confirmation")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        order_id: str | None = None,
        payment: dict[str, Any] | str | None = None,
        reservation: dict[str, Any] | str | None = None,
        shipment: dict[str, Any] | str | None = None,
        confirmation: dict[str, Any] | str | None = None,
        saga: Any = None,
        inputs: dict[str, tuple[str, str | None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.order_id = order_id
        self.payment = payment
        self.reservation = reservation
        self.shipment = shipment
        self.confirmation = confirmation
        self.saga_init(saga, inputs)

    def execute(self, context: Context) -> dict[str, Any]:
        self.prepare(context)
        payment, reservation, shipment = dict(self.payment), dict(self.reservation), dict(self.shipment)
        confirmation = dict(self.confirmation) if self.confirmation else {}
        result = {
            "order_id": self.order_id,
            "status": "completed",
            "payment_id": payment["payment_id"],
            "amount": payment.get("amount"),
            "currency": payment.get("currency"),
            "reservation_id": reservation["reservation_id"],
            "shipment_id": shipment["shipment_id"],
            "tracking_number": shipment["tracking_number"],
            "carrier": shipment.get("carrier"),
            "estimated_delivery": shipment.get("estimated_delivery"),
            "confirmation_sent": bool(confirmation),
            "confirmation_message_id": confirmation.get("message_id"),
        }
        from airflow_order_provider.signals import cancel_request

        cancel = cancel_request(str(self.order_id))
        if cancel:
            result["cancel_request"] = {**cancel, "honoured": False,
                                        "why": "the carrier had picked the order up before the cancel was read"}
            self.log.warning("Order %s completed although a cancel was asked (%s): the carrier had it first",
                             self.order_id, cancel.get("reason"))
        if not confirmation:
            self.log.warning("Order %s completed, but its confirmation email was not sent", self.order_id)
        self.log.info("Order %s completed: %s", self.order_id, result)
        if self.saga is None:
            return result
        # Nothing of the rollback will run: say so now, as one call of this task, instead of
        # leaving the scheduler to skip the planner, each compensation and the cancelled record by
        # their trigger rules one examination of the run at a time (each waits its turn among
        # every open run: many orders waiting for approval make that seconds per link).
        context["ti"].xcom_push(key="return_value", value=result)
        raise DownstreamTasksSkipped(tasks=list(self.saga.rollback_path))


class RollForwardOrderOperator(OrderServiceOperator):
    """
    Finish an order whose shipment is past its point of no return, instead of undoing it.

    Runs when ``cancel_shipment`` found the shipment dispatched: the parcel is on its way and the
    customer paid, so the right end is a completed order, not a person's task. It adopts the
    dispatched shipment (asked of the shipping service: the shipping step's answer may have been
    lost), sends the customer's confirmation under the confirmation step's own idempotency key (so
    never twice), and records the order as completed with ``rolled_forward: true``; operations are
    told what happened. No compensation runs: the charge and the committed stock stay.

    A confirmation that cannot be sent on the last try does not stop the order (as in the forward
    path): ``confirmation_sent`` is then false. Its retries are the notification service's.

    :param payment: the payment step's result. (templated)
    :param reservation: the inventory step's result. (templated)
    :param inputs: with the saga, where those results come from.
    """

    service = "notification"
    action = "notification.confirmation"
    template_fields: Sequence[str] = ("order_id", "payment", "reservation")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        payment: dict[str, Any] | str | None = None,
        reservation: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.payment = payment
        self.reservation = reservation
        self.order: dict[str, Any] = {}

    def take_order(self, order: dict[str, Any]) -> None:
        super().take_order(order)
        self.order = order

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_order_provider.notifications.alerts import rolled_forward_alert
        from airflow_order_provider.operators.notification import confirmation_email

        self.prepare(context)
        order_id = str(self.order_id)
        dispatched = [s for s in hook_for("shipping").live_for_order(order_id) if s.get("status") == "dispatched"]
        if len(dispatched) != 1:
            raise AirflowFailException(
                f"order {order_id} rolls forward, but the shipping service shows {len(dispatched)} dispatched"
                " shipments for it: settle it by hand"
            )
        shipment = dispatched[0]
        payment = dict(self.payment or {}) or self._live("payment")
        reservation = dict(self.reservation or {}) or self._live("inventory")
        subject, body = confirmation_email(
            order_id=order_id, items=list(self.order.get("items") or []),
            total_amount=int(self.order.get("total_amount") or payment.get("amount") or 0),
            currency=str(self.order.get("currency") or payment.get("currency")),
            tracking_number=shipment.get("tracking_number"), carrier=shipment.get("carrier"),
            estimated_delivery=shipment.get("estimated_delivery"),
        )
        try:
            message = self.hook.send_email(order_id=order_id, to=str(self.order.get("customer_email")),
                                           subject=subject, body=body, idempotency_key=self.idempotency_key)
        except Exception as error:
            if not self.is_last_try(context["ti"]):
                raise
            self.log.error("Order %s rolls forward without its confirmation: %s", order_id, error)
            message = {}
        failed = (context["ti"].xcom_pull(task_ids=self.saga.plan.task_id, key=PLAN_KEY) or {}) if self.saga else {}
        result = {
            "order_id": order_id,
            "status": "completed",
            "rolled_forward": True,
            "why": failed.get("reason"),
            "payment_id": payment.get("payment_id"),
            "amount": payment.get("amount"),
            "currency": payment.get("currency"),
            "reservation_id": reservation.get("reservation_id"),
            "shipment_id": shipment.get("shipment_id"),
            "tracking_number": shipment.get("tracking_number"),
            "carrier": shipment.get("carrier"),
            "estimated_delivery": shipment.get("estimated_delivery"),
            "confirmation_sent": bool(message),
            "confirmation_message_id": message.get("message_id"),
        }
        rolled_forward_alert(
            order_id=order_id, run_id=str(getattr(context.get("dag_run"), "run_id", "") or ""),
            what=(
                f"Order {order_id} was being compensated ({failed.get('reason') or 'a step failed'}), but its"
                f" shipment {shipment.get('shipment_id')} had already been dispatched and can no longer be"
                " cancelled. The order was completed instead: the shipment adopted, the charge"
                f" {payment.get('payment_id')} and the stock kept, the confirmation"
                f" {'sent' if message else 'NOT sent (send it by hand)'}. Nothing was refunded or released."
            ),
        )
        self.log.info("Order %s rolled forward and completed: %s", order_id, result)
        return result

    def _live(self, service: str) -> dict[str, Any]:
        live = hook_for(service).live_for_order(str(self.order_id))
        return dict(live[0]) if len(live) == 1 else {}
