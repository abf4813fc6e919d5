"""
The order-level tasks: validate the input, plan the compensation, record the outcome.

The forward steps and their compensations live with their services (``payment.py``...); these
tasks tie them into one order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseBranchOperator, BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from airflow_order_provider.exceptions import OrderServiceError
from airflow_order_provider.models import parse_order
from airflow_order_provider.operators.base import (
    ABANDON,
    DECISION_KEY,
    FAILURE_KEY,
    OrderCompensationOperator,
)
from airflow_order_provider.policies import order_times

if TYPE_CHECKING:
    from airflow.sdk import Context

#: XCom key of the planner's decision: why the order is undone and which compensations run.
PLAN_KEY = "plan"


class ValidateOrderOperator(BaseOperator):
    """
    Check the order before any service is called, and push it, normalized, for the steps.

    A bad order fails this task at once (no retry) with a message that names every bad field.

    :param order: the order; defaults to the run's conf. (templated)
    """

    template_fields: Sequence[str] = ("order",)
    ui_color = "#f0f0f0"

    def __init__(self, *, order: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.order = order

    def execute(self, context: Context) -> dict[str, Any]:
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
        result = order.model_dump(mode="json")
        result["service_level"] = order.service_level
        return result


class PlanCompensationOperator(BaseBranchOperator):
    """
    When a forward step fails for good, choose the compensations to run, latest step first.

    Each forward step that completed (it has a result) and has a compensation is undone. The
    failed step is the first one Airflow shows as failed; it is undone too when its last call may
    have been carried out without an answer coming back (a timeout, a worker that died): the
    planner asks the service whether the order has anything live there. A step refused outright
    (a declined card), or a call the service did not carry out (a 5xx, a refused connection),
    left nothing to undo.

    Nothing is undone when the failed step's ``on_retries_exhausted`` is ``fail``, or a person
    chose to abandon the order.

    :param order_id: the order. (templated)
    :param steps: the forward steps in order, each mapped to its compensation task id, or None
        for a step with nothing to undo (an approval, a wait).
    :param cancel_task_id: the task that records the cancelled order, run after the compensations.
    :param order_task_id: the task whose result is the validated order; without it, the order
        never started and there is nothing to compensate.
    """

    template_fields: Sequence[str] = ("order_id",)
    ui_color = "#fff4e5"

    def __init__(
        self,
        *,
        order_id: str,
        steps: dict[str, str | None],
        cancel_task_id: str,
        order_task_id: str = "validate_order",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.order_id = order_id
        self.steps = dict(steps)
        self.cancel_task_id = cancel_task_id
        self.order_task_id = order_task_id

    def _states(self, context: Context) -> dict[str, str | None]:
        ti = context["ti"]
        found = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=list(self.steps))
        return dict(found.get(ti.run_id, {}))

    def choose_branch(self, context: Context) -> list[str]:
        ti = context["ti"]
        if ti.xcom_pull(task_ids=self.order_task_id) is None:
            raise AirflowSkipException("The order was never validated: no step ran, nothing to compensate")
        states = self._states(context)
        completed = [step for step in self.steps if ti.xcom_pull(task_ids=step) is not None]
        failed = [step for step in self.steps if states.get(step) == "failed"]
        missing = [step for step in self.steps if step not in completed and states.get(step) != "skipped"]
        failed_step = (failed or missing or [None])[0]
        if failed_step is None:
            self.log.info("Every step of order %s completed: nothing to compensate", self.order_id)
            return []

        failure = ti.xcom_pull(task_ids=failed_step, key=FAILURE_KEY) or {}
        decision = ti.xcom_pull(task_ids=failed_step, key=DECISION_KEY) or {}
        reason = (
            f"{failed_step} failed: {failure['error_type']}: {failure['message']}"
            if failure
            else f"{failed_step} failed (see its log)"
        )
        plan: dict[str, Any] = {
            "order_id": self.order_id,
            "failed_step": failed_step,
            "error_type": failure.get("error_type"),
            "reason": reason,
            "decision": decision.get("choice"),
            "compensations": [],
        }

        if decision.get("choice") == ABANDON:
            plan["outcome"] = "abandoned"
        elif failure.get("on_retries_exhausted") == "fail" and not failure.get("never_retried"):
            plan["outcome"] = "failed"
        else:
            to_undo = [step for step in reversed(completed) if self.steps[step]]
            # No failure record (the worker died) or no answer (a timeout): the call may have taken
            # effect at the service. Ask it; if it cannot say, let the compensation find out.
            if self.steps.get(failed_step) and (not failure or failure.get("ambiguous")):
                if self._may_have_taken_effect(failed_step):
                    to_undo.insert(0, failed_step)
            plan["outcome"] = "cancelled"
            plan["compensations"] = [self.steps[step] for step in to_undo]

        ti.xcom_push(key=PLAN_KEY, value=plan)
        if plan["outcome"] != "cancelled":
            self.log.warning("Order %s %s: %s. Nothing is undone.", self.order_id, plan["outcome"], reason)
            return []
        self.log.info(
            "Order %s: %s. Compensating, in this order: %s",
            self.order_id, reason, ", ".join(plan["compensations"]) or "nothing (no step completed)",
        )
        return [*plan["compensations"], self.cancel_task_id]

    def _may_have_taken_effect(self, step: str) -> bool:
        compensation = self._compensation(step)
        try:
            live = compensation.live_ids(self.order_id)
        except OrderServiceError as error:
            self.log.warning("Cannot ask whether %s took effect (%s): its compensation will check", step, error)
            return True
        self.log.info("%s got no answer; live at the service: %s", step, live or "nothing")
        return bool(live)

    def _compensation(self, step: str) -> OrderCompensationOperator:
        task = self.dag.get_task(self.steps[step])
        if not isinstance(task, OrderCompensationOperator):
            raise TypeError(f"{task.task_id} is not an OrderCompensationOperator")
        return task


class CheckOrderValueOperator(BaseBranchOperator):
    """
    Send high-value orders to approval; the others go straight on.

    :param total_amount: the order's total in minor units. (templated)
    :param approval_task_id: the approval task, for orders above the threshold.
    :param next_task_id: the step after the approval, which every order takes.
    :param threshold: orders above it need approval; defaults to ``[order_provider]
        approval_threshold`` (100000).
    """

    template_fields: Sequence[str] = ("total_amount",)
    ui_color = "#f0f0f0"

    def __init__(
        self,
        *,
        total_amount: int | str,
        approval_task_id: str,
        next_task_id: str,
        threshold: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.total_amount = total_amount
        self.approval_task_id = approval_task_id
        self.next_task_id = next_task_id
        self.threshold = threshold

    def choose_branch(self, context: Context) -> list[str]:
        threshold = self.threshold if self.threshold is not None else order_times().approval_threshold
        if int(self.total_amount) > threshold:
            self.log.info("Total %s is above %s: the order needs approval", self.total_amount, threshold)
            return [self.approval_task_id, self.next_task_id]
        self.log.info("Total %s is at or below %s: no approval needed", self.total_amount, threshold)
        return [self.next_task_id]


class CancelOrderOperator(BaseOperator):
    """
    Record the cancelled order once its compensations are done.

    Its XCom is the order's result: ``{"order_id", "status": "cancelled", "reason",
    "failed_step", "compensated": [...]}``. The run still ends failed: the order did not
    complete, and the failed step stays red in the grid.

    :param order_id: the order. (templated)
    :param plan_task_id: the compensation planner's task id.
    """

    template_fields: Sequence[str] = ("order_id",)
    ui_color = "#fdecea"

    def __init__(self, *, order_id: str, plan_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.order_id = order_id
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids=self.plan_task_id, key=PLAN_KEY) or {}
        compensated = []
        for task_id in plan.get("compensations", []):
            undone = ti.xcom_pull(task_ids=task_id) or {}
            compensated.append({"task": task_id, **undone})
        result = {
            "order_id": self.order_id,
            "status": "cancelled",
            "reason": plan.get("reason"),
            "failed_step": plan.get("failed_step"),
            "compensated": compensated,
        }
        self.log.info("Order %s cancelled (%s); undone: %s", self.order_id, result["reason"],
                      [c["task"] for c in compensated] or "nothing")
        return result


class CompleteOrderOperator(BaseOperator):
    """
    Record the completed order: what was charged, reserved and shipped.

    Its XCom is the order's result: ``{"order_id", "status": "completed", "payment_id",
    "reservation_id", "shipment_id", "tracking_number", ..., "confirmation_sent"}``. An order
    whose confirmation email never went out still completes (operations are alerted by the
    confirmation task); ``confirmation_sent`` is then false.

    :param order_id: the order. (templated)
    :param payment: the payment step's result. (templated)
    :param reservation: the inventory step's result. (templated)
    :param shipment: the shipping step's result. (templated)
    :param confirmation: the confirmation step's result, if it was sent. (templated)
    """

    template_fields: Sequence[str] = ("order_id", "payment", "reservation", "shipment", "confirmation")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        order_id: str,
        payment: dict[str, Any] | str,
        reservation: dict[str, Any] | str,
        shipment: dict[str, Any] | str,
        confirmation: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.order_id = order_id
        self.payment = payment
        self.reservation = reservation
        self.shipment = shipment
        self.confirmation = confirmation

    def execute(self, context: Context) -> dict[str, Any]:
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
        if not confirmation:
            self.log.warning("Order %s completed, but its confirmation email was not sent", self.order_id)
        self.log.info("Order %s completed: %s", self.order_id, result)
        return result
