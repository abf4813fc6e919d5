"""Manual approval of high-value orders, through Airflow's human-in-the-loop (Required Actions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator

from airflow_order_provider.exceptions import OrderCancelledError, OrderRejectedError
from airflow_order_provider.operators.base import OrderSagaTask
from airflow_order_provider.operators.notification import format_amount
from airflow_order_provider.policies import REQUIRED_ACTION_RETRY_DEFAULTS, order_times, with_policy_defaults
from airflow_order_provider.required_actions import recorded_answer
from airflow_order_provider.saga.failure import StepFailure

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.models import Order

APPROVE, REJECT = "Approve", "Reject"
_ASKED_AT_KEY = "asked_at"


def approval_request(order: dict[str, Any]) -> tuple[str, str]:
    """Subject and Markdown body of the approval request: the order as the approver must see it."""
    currency = order["currency"]
    total = format_amount(int(order["total_amount"]), currency)
    address = order["shipping_address"]
    lines = "\n".join(
        f"| {item['sku']} | {item['quantity']} | {format_amount(int(item['unit_price']), currency)} |"
        for item in order["items"]
    )
    street = ", ".join(part for part in (address["line1"], address.get("line2")) if part)
    body = (
        f"Order **{order['order_id']}** of **{total}** is above the approval threshold. "
        "The payment is taken; approving ships the order, rejecting refunds it.\n\n"
        f"**Customer:** {order['customer_id']} ({order['customer_email']}, {order['customer_tier']})\n\n"
        "| SKU | Quantity | Unit price |\n|---|---|---|\n"
        f"{lines}\n\n"
        f"**Ship to:** {address['name']}, {street}, {address['postal_code']} {address['city']}, "
        f"{address['country']} ({address['region']})\n"
    )
    return f"Approve order {order['order_id']} ({total})?", body


class ApproveOrderOperator(OrderSagaTask, HITLOperator):
    """
    Ask a person to approve a high-value order, in the UI's Required Actions.

    The task waits in the ``awaiting_input`` state, holding no worker slot. *Approve* lets the
    order go on; *Reject*, or no answer within ``response_timeout`` (``[order_provider]
    approval_timeout``, 24 h scaled), fails this step with :class:`OrderRejectedError`, and the
    compensation planner refunds the payment.

    A cancel sent through the order API while the order waits ends the wait at once: the API
    answers the request for the customer, and the step fails with
    :class:`~airflow_order_provider.exceptions.OrderCancelledError`; the payment is refunded.

    Pushes ``{"approved": true, "by": ..., "waited_seconds": ..., "completed_at": ...}``.

    :param order: the validated order; default the saga's (read once at run time). (templated)
    :param response_timeout: how long to wait for an answer; defaults to the approval timeout.
    """

    template_fields: Sequence[str] = (*HITLOperator.template_fields, "order")
    ui_color = "#fff4e5"

    def __init__(
        self,
        *,
        order: dict[str, Any] | str | None = None,
        response_timeout: timedelta | None = None,
        saga: Any = None,
        **kwargs: Any,
    ) -> None:
        if response_timeout is None:
            response_timeout = max(order_times().scaled("approval_timeout"), timedelta(seconds=1))
        kwargs.setdefault("subject", "Approve this order?")
        super().__init__(
            options=[APPROVE, REJECT],
            defaults=[REJECT],
            multiple=False,
            response_timeout=response_timeout,
            **with_policy_defaults(kwargs, REQUIRED_ACTION_RETRY_DEFAULTS),
        )
        self.order = order
        self.saga_init(saga, None)

    @property
    def order_id(self) -> str | None:  # type: ignore[override]
        return dict(self.order)["order_id"] if isinstance(self.order, dict) else (self.order and str(self.order))

    @order_id.setter
    def order_id(self, value: str | None) -> None:
        pass  # derived from the order

    def take_order(self, order: Order) -> None:
        if not self.order:
            from airflow_order_provider.order_conf import order_payload

            self.order = order_payload(order)

    def execute(self, context: Context) -> Any:
        self.prepare(context)
        answered = recorded_answer(context)
        if answered is not None:
            # This try or the one before was answered, then failed or started again from outside
            # before it could act on the answer (REQUIRED_ACTION_RETRY_DEFAULTS): act on it now;
            # asking again would clear it.
            self.log.warning("Order %s: acting on the answer already given: %s",
                             self.order_id, answered["chosen_options"])
            return self.execute_complete(context, answered)
        self.subject, self.body = approval_request(dict(self.order))
        context["ti"].xcom_push(key=_ASKED_AT_KEY, value=datetime.now(timezone.utc).isoformat())
        self.log.info("Order %s waits for approval for up to %s", self.order_id, self.response_timeout)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        self.prepare(context)  # a new process resumes the task: read the order again
        answer = super().execute_complete(context, event)
        ti = context["ti"]
        asked_at = ti.xcom_pull(task_ids=self.task_id, key=_ASKED_AT_KEY)
        waited = (
            (datetime.now(timezone.utc) - datetime.fromisoformat(asked_at)).total_seconds() if asked_at else 0.0
        )
        user = answer.get("responded_by_user") or {}
        who = user.get("name") or user.get("id")
        completed_at = datetime.now(timezone.utc).isoformat()
        from airflow_order_provider.signals import cancel_request

        # A rejection may be a cancel's: the order API answers Reject for the user who cancelled.
        cancel = cancel_request(str(self.order_id)) if answer["chosen_options"] != [APPROVE] else None
        if cancel:
            message = f"order {self.order_id} cancelled while waiting for approval: {cancel.get('reason') or 'no reason given'}"
            StepFailure(step=self.task_id, error_type="OrderCancelledError", message=message, never_retried=True,
                        waited_seconds=waited).push(ti)
            raise OrderCancelledError(message)
        if answer["chosen_options"] == [APPROVE]:
            self.log.info("Order %s approved by %s", self.order_id, who)
            return {"approved": True, "by": who, "waited_seconds": waited, "completed_at": completed_at}
        reason = (
            f"rejected by {who}"
            if who and not event.get("timedout")
            else f"not approved within {self.response_timeout}"
        )
        StepFailure(step=self.task_id, error_type="OrderRejectedError", message=f"order {self.order_id} {reason}",
                    never_retried=True, waited_seconds=waited).push(ti)
        raise OrderRejectedError(f"Order {self.order_id} {reason}")
