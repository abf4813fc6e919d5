"""
The order-level tasks before and between the steps: validate the input, send high-value orders to
approval, plan the compensation. The tasks that record the outcome are in
:mod:`airflow_order_provider.operators.outcome`.

The forward steps and their compensations live with their services (``payment.py``...); these
tasks tie them into one order. Their place in the order saga is :mod:`airflow_order_provider.order_saga`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_order_provider.exceptions import OrderServiceError
from airflow_order_provider.operators.base import OrderSagaTask, hook_for
from airflow_order_provider.policies import ORDER_TASK_RETRY_DEFAULTS, order_times, policy_for, with_policy_defaults
from airflow_order_provider.saga.planner import PLAN_KEY, PlanCompensationOperator
from airflow_order_provider.version_compat import (
    BaseBranchOperator,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.models import Order
    from airflow_order_provider.saga.failure import StepFailure

__all__ = [
    "PLAN_KEY",
    "CheckOrderValueOperator",
    "OrderPlanCompensationOperator",
    "PlanCompensationOperator",
    "ValidateOrderOperator",
]


class ValidateOrderOperator(BaseOperator):
    """
    Check the order before any service is called, and push it, normalized, for the steps.

    A bad order fails this task at once (no retry) with a message that names every bad field; a try
    failed from outside (its worker died) is retried (``ORDER_TASK_RETRY_DEFAULTS``).
    Whatever came in the run's conf (the trigger form, the REST API, the order API), this is where
    it is validated in full; the steps then read it from the conf through
    :func:`~airflow_order_provider.order_conf.order_of` (typed, trusted), or, when this task was
    given its ``order``, from what it pushes.

    :param order: the order; defaults to the run's conf. (templated)
    """

    template_fields: Sequence[str] = ("order",)
    ui_color = "#f0f0f0"

    def __init__(self, *, order: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**with_policy_defaults(kwargs, ORDER_TASK_RETRY_DEFAULTS))
        self.order = order

    def execute(self, context: Context) -> dict[str, Any]:
        # The order model (pydantic) is built on first use, not when a DAG file is parsed.
        from airflow_order_provider.models import parse_order
        from airflow_order_provider.order_conf import conf_of

        data = self.order if self.order is not None else conf_of(context.get("dag_run"))
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
        from airflow_order_provider.order_conf import order_payload

        return order_payload(order)


class OrderPlanCompensationOperator(PlanCompensationOperator):
    """
    The order's compensation planner: the saga's planner (latest step first), asking the services.

    A step that was attempted but has no proven result (its answer was lost on any try, its worker
    died, a cancel was read after an earlier try went through) is undone when its service has
    anything in effect for the order, whatever its last try's failure says. When the service
    cannot say, the compensation runs and finds out itself.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**with_policy_defaults(kwargs, ORDER_TASK_RETRY_DEFAULTS))

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
        from airflow_order_provider.order_conf import order_of

        order = order_of(context.get("dag_run"))
        chosen = order.on_retries_exhausted.get(service) if order is not None else None
        return chosen or policy_for(service).on_retries_exhausted


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
        super().__init__(**with_policy_defaults(kwargs, ORDER_TASK_RETRY_DEFAULTS))
        self.total_amount = total_amount
        self.step_task_id = step_task_id
        self.next_task_id = next_task_id
        self.threshold = threshold
        self.order_id = None
        self.saga_init(saga, None)

    def take_order(self, order: Order) -> None:
        super().take_order(order)
        if self.total_amount in (None, ""):
            self.total_amount = order.total_amount

    def choose_branch(self, context: Context) -> list[str]:
        self.prepare(context)
        threshold = self.threshold if self.threshold is not None else order_times().approval_threshold
        if int(self.total_amount) > threshold:
            self.log.info("Total %s is above %s: the order needs approval", self.total_amount, threshold)
            return [self.step_task_id, self.next_task_id]
        self.log.info("Total %s is at or below %s: no approval needed", self.total_amount, threshold)
        return [self.next_task_id]
