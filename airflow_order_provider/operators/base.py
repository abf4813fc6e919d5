"""
What every order step and compensation operator shares: its policy, its hook, its idempotency key,
and what it does when a call fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout

from airflow_order_provider.exceptions import (
    InvalidStateError,
    NotFoundError,
    OrderCancelledError,
    OrderServiceError,
    ServiceTimeoutError,
    StepAbandonedError,
    StepFailedError,
    TransientServiceError,
    WorkflowTimeoutError,
)
from airflow_order_provider.policies import (
    EXHAUSTED_MODES,
    ServicePolicy,
    order_times,
    policy_for,
    time_scale,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.hooks.base import OrderServiceHook

#: XCom key under which a step records why its last try failed (read by the compensation planner).
FAILURE_KEY = "failure"
#: XCom key under which a paused step records the decision a person took.
DECISION_KEY = "decision"

RETRY, COMPENSATE, ABANDON = "Retry the step", "Compensate the order", "Abandon the order"


def idempotency_key(order_id: str, action: str) -> str:
    """
    The key under which a service remembers one action of one order.

    It depends only on the order and the action (never on the run or the try), so a retry, a
    cleared task and a second run of the same order all repeat the same request, which the
    service answers from its memory instead of charging, reserving, shipping or emailing again.
    """
    return f"{order_id}:{action}"


class OrderServiceOperator(BaseOperator):
    """
    Base for an operator that makes one business call to one order service.

    The retry policy, backoff and step timeout come from the service's row of the policy table
    (:mod:`airflow_order_provider.policies`, with the deployment's overrides); any of them given
    explicitly or through ``default_args`` wins.

    :param order_id: the order this call belongs to; with ``action`` it makes the idempotency
        key. (templated)
    :param conn_id: connection to the service; defaults to the hook's default connection.
    """

    #: Service whose policy and hook this operator uses: ``payment``, ``inventory``...
    service: ClassVar[str]
    #: What this operator does, as part of the idempotency key: ``payment.charge``...
    action: ClassVar[str]

    template_fields: Sequence[str] = ("order_id",)
    ui_color = "#e8f4fd"

    def __init__(self, *, order_id: str, conn_id: str | None = None, **kwargs: Any) -> None:
        policy = policy_for(self.service)
        # default_args reach this __init__ unapplied: an explicit argument or a default_args entry
        # both win over the policy table.
        given = {**(kwargs.get("default_args") or {}), **kwargs}
        for name, value in policy.operator_defaults().items():
            if name not in given:
                kwargs[name] = value
        super().__init__(**kwargs)
        self.policy: ServicePolicy = policy
        self.order_id = order_id
        self.conn_id = conn_id

    def _hook_class(self) -> type[OrderServiceHook]:
        from airflow_order_provider.hooks import hook_class_for

        return hook_class_for(self.service)

    @cached_property
    def hook(self) -> OrderServiceHook:
        """The service's hook, created on first use (at run time, never at parse time)."""
        return self._hook_class()(conn_id=self.conn_id)

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.order_id, self.action)

    def ship_deadline_near(self, context: Context) -> bool:
        """Whether less than ``expedite_within`` is left before the order's ship deadline."""
        dag_run = context.get("dag_run")
        if dag_run is None:  # called outside a DAG run: no order clock
            return False
        times = order_times()
        started = dag_run.start_date or dag_run.run_after
        left = started + times.scaled("ship_deadline") - datetime.now(timezone.utc)
        near = left < times.scaled("expedite_within")
        if near:
            self.log.warning("Order %s must ship within %s: expediting", self.order_id, left)
        return near

    def _next_try_window(self, try_number: int) -> tuple[float, float]:
        """Seconds until Airflow's next try, as its backoff computes them (with its jitter)."""
        delay = self.retry_delay.total_seconds()
        if self.retry_exponential_backoff and self.retry_exponential_backoff != 1:
            low = max(1.0, math.ceil(delay * self.retry_exponential_backoff ** (try_number - 1)))
            high = 2 * low
        else:
            low = high = delay
        if self.max_retry_delay is not None:
            cap = (
                self.max_retry_delay.total_seconds()
                if isinstance(self.max_retry_delay, timedelta)
                else float(self.max_retry_delay)
            )
            low, high = min(low, cap), min(high, cap)
        return low, high


class OrderStepOperator(OrderServiceOperator):
    """
    A forward step of the order: it calls its service, and when the call fails it records why.

    A failure no retry can fix, or the last try failing, makes the step fail for good. What
    happens then is ``on_retries_exhausted`` (default: the policy table's): ``compensate``
    (the DAG's compensation planner undoes the completed steps), ``fail`` (nothing is undone;
    operations are alerted), or ``pause``: the task waits in Airflow's Required Actions for a
    person to choose *retry*, *compensate* or *abandon*; no answer within the policy's
    ``decision_timeout`` counts as *compensate*.

    Before calling, the step checks the order's workflow clock: past the workflow timeout
    (:class:`~airflow_order_provider.policies.OrderTimes`), it fails with
    :class:`~airflow_order_provider.exceptions.WorkflowTimeoutError` instead, and the completed
    steps are compensated.

    :param on_retries_exhausted: ``compensate``, ``pause`` or ``fail``; empty or None for the
        policy table's. (templated)
    :param workflow_timeout: the order's own workflow timeout in seconds, if shorter than the
        deployment's; empty or None for the deployment's. (templated)
    :param workflow_clock_excludes: tasks whose wait (their result's ``waited_seconds``) does not
        count against the workflow timeout: the approval, the carrier's pickup.
    """

    template_fields: Sequence[str] = ("order_id", "on_retries_exhausted", "workflow_timeout")

    def __init__(
        self,
        *,
        on_retries_exhausted: str | None = None,
        workflow_timeout: int | str | None = None,
        workflow_clock_excludes: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_retries_exhausted = on_retries_exhausted
        self.workflow_timeout = workflow_timeout
        self.workflow_clock_excludes = list(workflow_clock_excludes)

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
        mode = self.exhausted_mode
        try:
            self.check_signals(context)
            self.check_workflow_clock(context)
            return self.call_service(context)
        except (OrderServiceError, AirflowTaskTimeout, WorkflowTimeoutError, OrderCancelledError) as error:
            self._record_failure(context, error, mode)
            raise

    def check_signals(self, context: Context) -> None:
        """The checkpoint between steps: a cancelled order goes no further (see signals.py)."""
        from airflow_order_provider.signals import cancel_request

        cancel = cancel_request(self.order_id)
        if cancel:
            raise OrderCancelledError(
                f"order {self.order_id} cancelled before {self.task_id}: {cancel.get('reason') or 'no reason given'}"
            )

    def workflow_time_left(self, context: Context) -> timedelta:
        """The order's workflow timeout less the time it has used (waits excluded)."""
        limit = order_times().workflow_timeout
        if self.workflow_timeout not in (None, ""):
            limit = min(limit, timedelta(seconds=float(self.workflow_timeout)))
        limit = limit * time_scale()
        dag_run = context["dag_run"]
        started = dag_run.start_date or dag_run.run_after
        ti = context["ti"]
        waited = sum(
            float((ti.xcom_pull(task_ids=task_id) or {}).get("waited_seconds") or 0)
            for task_id in self.workflow_clock_excludes
        )
        used = datetime.now(timezone.utc) - started - timedelta(seconds=waited)
        return limit - used

    def check_workflow_clock(self, context: Context) -> None:
        left = self.workflow_time_left(context)
        if left <= timedelta(0):
            raise WorkflowTimeoutError(
                f"order {self.order_id} ran past its workflow timeout ({-left.total_seconds():.1f} s over)"
                f" before {self.task_id}"
            )

    def _record_failure(self, context: Context, error: BaseException, mode: str) -> None:
        ti = context["ti"]
        never_retried = self.policy.is_never_retried(error) or isinstance(error, AirflowFailException)
        final = never_retried or ti.try_number > self.retries
        error_type = getattr(error, "error_type", type(error).__name__)
        failure = {
            "step": self.task_id,
            "service": self.service,
            "error_type": error_type,
            "message": getattr(error, "message", None) or str(error) or error_type,
            "transient": isinstance(error, (TransientServiceError, AirflowTaskTimeout)),
            # The call may have been carried out although no answer came back: the compensation
            # planner asks the service what the order has there. A 5xx or a refused connection
            # means the request was not carried out.
            "ambiguous": isinstance(error, (ServiceTimeoutError, AirflowTaskTimeout)),
            "never_retried": never_retried,
            "try_number": ti.try_number,
            "final": final,
            "on_retries_exhausted": mode,
        }
        ti.xcom_push(key=FAILURE_KEY, value=failure)
        attempts = self.retries + 1
        if not final:
            low, high = self._next_try_window(ti.try_number)
            self.log.warning(
                "Try %d of %d of %s for order %s failed: %s. Airflow tries again in %g to %g s (try %d of %d).",
                ti.try_number, attempts, self.task_id, self.order_id, failure["message"], low, high,
                ti.try_number + 1, attempts,
            )
            return
        if never_retried:
            self.log.error(
                "%s for order %s failed for good: %s is never retried. %s",
                self.task_id, self.order_id, error_type, failure["message"],
            )
        else:
            self.log.error(
                "%s for order %s failed on its last try (%d of %d): %s. On retries exhausted: %s.",
                self.task_id, self.order_id, ti.try_number, attempts, failure["message"], mode,
            )
            if mode == "pause":
                self._ask_for_decision(context, failure)

    # -- pause: a person decides -------------------------------------------------------------

    def _ask_for_decision(self, context: Context, failure: dict[str, Any]) -> None:
        from airflow.sdk.exceptions import TaskAwaitingInput
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        timeout = max(self.policy.scaled(self.policy.decision_timeout), timedelta(seconds=1))
        upsert_hitl_detail(
            ti_id=context["task_instance"].id,
            options=[RETRY, COMPENSATE, ABANDON],
            subject=f"Order {self.order_id}: {self.task_id} failed after {self.retries + 1} tries",
            body=(
                f"**{self.task_id}** of order **{self.order_id}** failed on every try.\n\n"
                f"Last error: `{failure['error_type']}`: {failure['message']}\n\n"
                f"* **{RETRY}**: try the call once more (safe: the service remembers the request).\n"
                f"* **{COMPENSATE}**: undo the completed steps in reverse order and cancel the order.\n"
                f"* **{ABANDON}**: undo nothing and fail the order; operations are alerted.\n\n"
                f"Without an answer within {timeout}, the order is compensated."
            ),
            defaults=[COMPENSATE],
            multiple=False,
            params={},
        )
        self.log.info("Waiting up to %s for a decision in Required Actions", timeout)
        raise TaskAwaitingInput(method_name="resume_after_decision", timeout=timeout)

    def resume_after_decision(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Carry out the decision a person took in Required Actions (or the default at timeout)."""
        chosen = (event.get("chosen_options") or [COMPENSATE])[0]
        decided_by = event.get("responded_by_user") or {}
        who = decided_by.get("name") or decided_by.get("id") or "the timeout default"
        context["ti"].xcom_push(key=DECISION_KEY, value={"choice": chosen, "by": who})
        self.log.info("Decision for %s of order %s: %s (by %s)", self.task_id, self.order_id, chosen, who)
        if chosen == RETRY:
            return self.execute(context)
        if chosen == ABANDON:
            raise StepAbandonedError(f"{self.task_id} of order {self.order_id} abandoned by {who}")
        raise StepFailedError(f"{self.task_id} of order {self.order_id}: compensation chosen by {who}")


class OrderCompensationOperator(OrderServiceOperator):
    """
    Undo one completed step. Idempotent: a repeat, or an object already undone, changes nothing.

    When the step's result is unknown (the call may have reached the service although the task
    never saw the answer), the operator asks the service for what the order has there and undoes
    whatever is still live.

    :param reason: why the order is being undone; recorded by the service. (templated)
    """

    template_fields: Sequence[str] = ("order_id", "reason")
    ui_color = "#fdecea"

    #: Field of the object's id in the step's result and the service's records.
    id_field: ClassVar[str]
    #: Statuses that mean the object needs no undoing (already undone, or never took effect).
    settled_statuses: ClassVar[frozenset[str]]

    def __init__(self, *, reason: str = "order cancelled", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def find_for_order(self, order_id: str) -> list[dict[str, Any]]:
        """The order's records at the service."""
        raise NotImplementedError

    def get_record(self, object_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def undo(self, object_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def live_ids(self, order_id: str | None = None) -> list[str]:
        """Ids of the order's records at the service that still need undoing."""
        records = self.find_for_order(order_id or self.order_id)
        return [r[self.id_field] for r in records if r["status"] not in self.settled_statuses]

    def compensate(self, object_id: str | None) -> dict[str, Any]:
        ids = [object_id] if object_id else self.live_ids()
        if not ids:
            self.log.info("Order %s has nothing to undo at the %s service", self.order_id, self.service)
            return {self.id_field: None, "status": "nothing_to_undo"}
        results = [self._undo_once(object_id) for object_id in ids]
        return results[0] if len(results) == 1 else {"undone": results, "status": "undone"}

    def _undo_once(self, object_id: str) -> dict[str, Any]:
        try:
            return self.undo(object_id)
        except (InvalidStateError, NotFoundError) as error:
            # Already undone under another key (e.g. by hand), or settled by the service itself.
            record = self.get_record(object_id) if isinstance(error, InvalidStateError) else None
            if record is not None and record["status"] in self.settled_statuses:
                self.log.info("%s %s is already %s: nothing to undo", self.id_field, object_id, record["status"])
                return {self.id_field: object_id, "status": record["status"]}
            raise
