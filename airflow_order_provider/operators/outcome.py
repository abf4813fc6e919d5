"""
The order-level tasks that record its outcome: completed, cancelled (after its compensations), or
completed by rolling forward past the shipment's point of no return.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_order_provider.operators.base import OrderSagaTask, OrderServiceOperator, hook_for
from airflow_order_provider.policies import ORDER_TASK_RETRY_DEFAULTS, with_policy_defaults
from airflow_order_provider.saga.planner import PLAN_KEY, SagaCancelledOperator
from airflow_order_provider.version_compat import AirflowFailException, DownstreamTasksSkipped

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.models import Order


class CancelOrderOperator(SagaCancelledOperator):
    """
    Record the cancelled order once its compensations are done.

    Its XCom is the order's result: ``{"order_id", "status": "cancelled", "reason",
    "failed_step", "compensated": [...]}``. The run still ends failed: the order did not
    complete, and the failed step stays red in the grid.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**with_policy_defaults(kwargs, ORDER_TASK_RETRY_DEFAULTS))


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
        super().__init__(**with_policy_defaults(kwargs, ORDER_TASK_RETRY_DEFAULTS))
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
        self.order: Order | None = None

    def take_order(self, order: Order) -> None:
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
        order = self.order
        subject, body = confirmation_email(
            order_id=order_id, items=[item.model_dump(mode="json") for item in order.items] if order else [],
            total_amount=int((order.total_amount if order else None) or payment.get("amount") or 0),
            currency=str((order.currency if order else None) or payment.get("currency")),
            tracking_number=shipment.get("tracking_number"), carrier=shipment.get("carrier"),
            estimated_delivery=shipment.get("estimated_delivery"),
        )
        try:
            message = self.hook.send_email(order_id=order_id, to=str(order.customer_email if order else None),
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
