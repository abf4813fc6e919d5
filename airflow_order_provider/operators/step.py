"""
A forward step of the order: it passes the order's checkpoint, calls its service, and when the
call fails it records why (:mod:`airflow_order_provider.failures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_order_provider import clock
from airflow_order_provider.exceptions import (
    OrderAlreadyUndoneError,
    OrderCancelledError,
    OrderServiceError,
    WorkflowTimeoutError,
)
from airflow_order_provider.failures import classify
from airflow_order_provider.operators.adoption import AdoptsLostAnswers
from airflow_order_provider.operators.base import OrderServiceOperator, hook_for
from airflow_order_provider.operators.pause import PausesForDecision
from airflow_order_provider.policies import EXHAUSTED_MODES
from airflow_order_provider.version_compat import AirflowFailException, AirflowTaskTimeout, fail_at_once_on

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.models import Order
    from airflow_order_provider.saga.checkpoint import Checkpoint


def _growth(backoff: float | bool | None) -> float:
    """The factor retry delays grow by: Airflow 3.1's ``retry_exponential_backoff`` is True for doubling."""
    return 2.0 if backoff is True else float(backoff or 1)


class OrderStepOperator(AdoptsLostAnswers, PausesForDecision, OrderServiceOperator):
    """
    A forward step of the order: it passes the checkpoint, calls its service, and when the call
    fails it records why.

    Before calling, the step passes the order's checkpoint: a cancelled order, or one past its
    workflow timeout (:class:`~airflow_order_provider.policies.OrderTimes`; the waits for a person
    and the carrier left out), goes no further
    (:class:`~airflow_order_provider.exceptions.OrderCancelledError`,
    :class:`~airflow_order_provider.exceptions.WorkflowTimeoutError`). On a retry or a clear it
    then checks at their services that what the steps it builds on did is still in effect (no
    shipping over a charge refunded meanwhile):
    :class:`~airflow_order_provider.exceptions.OrderAlreadyUndoneError` otherwise. (A second run
    of an order meets the replay check below at its first step.)

    An answer that proves nothing about now is checked too: a replayed answer (a retry, a second
    run of the order) is checked against the record as it is now, and a request refused because
    its idempotency key was used with another request adopts the record that request left.

    A failure no retry can fix, or the last try failing, makes the step fail for good. What
    happens then is ``on_retries_exhausted`` (default: the policy table's): ``compensate``
    (the compensation planner undoes the completed steps), ``fail`` (nothing is undone;
    operations are alerted), or ``pause``: the task waits in Airflow's Required Actions for a
    person to choose *retry*, *compensate* or *abandon*; no answer within the policy's
    ``decision_timeout`` counts as *compensate*.

    :param on_retries_exhausted: ``compensate``, ``pause`` or ``fail``; empty or None for the
        order's choice (its ``on_retries_exhausted``) or the policy table's. (templated)
    :param workflow_timeout: the order's own workflow timeout in seconds, if shorter than the
        deployment's; empty or None for the order's or the deployment's. (templated)
    :param workflow_clock_excludes: tasks whose wait (their result's ``waited_seconds``) does not
        count against the workflow timeout; default the saga's waiting steps before this one.
    :param requires: services whose record for the order must still be in effect before this step
        runs; default those of the saga's ``requires`` steps.
    """

    template_fields: Sequence[str] = ("order_id", "on_retries_exhausted", "workflow_timeout")

    def __init__(
        self,
        *,
        on_retries_exhausted: str | None = None,
        workflow_timeout: int | str | None = None,
        workflow_clock_excludes: Sequence[str] | None = None,
        requires: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_retries_exhausted = on_retries_exhausted
        self.workflow_timeout = workflow_timeout
        saga = self.saga
        if workflow_clock_excludes is None:
            workflow_clock_excludes = (
                [s.task_id for s in saga.steps_before(self.task_id) if s.waits] if saga is not None else []
            )
        if requires is None:
            requires = (
                [saga.step(s).service for s in saga.step(self.task_id).requires if saga.step(s).service]
                if saga is not None
                else []
            )
        self.workflow_clock_excludes = list(workflow_clock_excludes)
        self.requires = list(requires)

    def take_order(self, order: Order) -> None:
        super().take_order(order)
        if self.on_retries_exhausted in (None, ""):
            self.on_retries_exhausted = order.on_retries_exhausted.get(self.service)
        if self.workflow_timeout in (None, ""):
            self.workflow_timeout = order.workflow_timeout_seconds

    @property
    def exhausted_mode(self) -> str:
        mode = self.on_retries_exhausted or self.policy.on_retries_exhausted
        if mode not in EXHAUSTED_MODES:
            raise AirflowFailException(
                f"on_retries_exhausted must be one of {', '.join(EXHAUSTED_MODES)}, got {mode!r}"
            )
        return mode

    def call_service(self, context: Context) -> dict[str, Any]:
        """Make the step's call and return its small JSON result (pushed as the XCom)."""
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        with fail_at_once_on(self.policy.is_never_retried):  # the retry policy's FAIL before Airflow 3.3
            return self._execute_step(context)

    def _execute_step(self, context: Context) -> dict[str, Any]:
        self.prepare(context)
        mode = self.exhausted_mode
        try:
            self.checkpoint(context).check()
            if context["ti"].try_number > 1:
                # A retry or a clear: what the earlier steps did may have been undone meanwhile (a
                # compensation, a refund by hand). A first try follows them directly and does not
                # ask, so that it does not depend on their services being up.
                self.check_required_live()
            result = self.call_service(context)
        except (OrderServiceError, AirflowTaskTimeout, WorkflowTimeoutError, OrderCancelledError,
                OrderAlreadyUndoneError) as error:
            self._record_failure(context, error, mode)
            raise
        return {**result, "completed_at": datetime.now(timezone.utc).isoformat()}

    # -- the checkpoint -------------------------------------------------------------------------

    def checkpoint(self, context: Context) -> Checkpoint:
        """The order's checkpoint before this step: its cancel signal and its workflow clock."""
        return clock.order_checkpoint(str(self.order_id), self.task_id, clock=clock.workflow_clock(
            context["dag_run"], self.workflow_timeout, lambda task_id: self.result_of(context, task_id),
            self.workflow_clock_excludes,
        ))

    def check_required_live(self) -> None:
        """What the earlier steps did must still be in effect: no shipping over a refunded charge."""
        for service in self.requires:
            hook = hook_for(service)
            if not hook.live_for_order(str(self.order_id)):
                raise OrderAlreadyUndoneError(
                    f"order {self.order_id} has nothing in effect at the {service} service any more (undone"
                    f" by an earlier run or by hand): {self.task_id} does not run. Place the order again"
                    " under a new order id."
                )

    # -- failure ------------------------------------------------------------------------------------

    def _record_failure(self, context: Context, error: BaseException, mode: str) -> None:
        ti = context["ti"]
        failure = classify(error, policy=self.policy, step=self.task_id, service=self.service,
                           try_number=ti.try_number, last_try=self.is_last_try(ti), on_retries_exhausted=mode)
        failure.push(ti)
        attempts = self.retries + 1
        if not failure.final:
            self.log.warning(
                "Try %d of %d of %s for order %s failed: %s. Airflow tries again after its retry delay"
                " (%s, growing x%g, at most %s): try %d of %d.",
                ti.try_number, attempts, self.task_id, self.order_id, failure.message, self.retry_delay,
                _growth(self.retry_exponential_backoff), self.max_retry_delay, ti.try_number + 1, attempts,
            )
            return
        if failure.never_retried:
            self.log.error(
                "%s for order %s failed for good: %s is never retried. %s",
                self.task_id, self.order_id, failure.error_type, failure.message,
            )
        else:
            self.log.error(
                "%s for order %s failed on its last try (%d of %d): %s. On retries exhausted: %s.",
                self.task_id, self.order_id, ti.try_number, attempts, failure.message, mode,
            )
            if mode == "pause":
                self.ask_for_decision(context, failure)
