"""
What every order step and compensation operator shares: its policy, its hook, its idempotency key,
how it learns the order, and what it does when a call fails or its answer proves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_order_provider.exceptions import (
    CompensationImpossibleError,
    IdempotencyKeyReusedError,
    InvalidStateError,
    NotFoundError,
    OrderAlreadyUndoneError,
    OrderCancelledError,
    OrderServiceError,
    ServiceAuthenticationError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    ServiceValidationError,
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
    with_policy_defaults,
)
from airflow_order_provider.saga.checkpoint import Checkpoint, WorkflowClock, waited_seconds
from airflow_order_provider.saga.failure import (
    ABANDON,
    COMPENSATE,
    DECISION_KEY,
    FAILURE_KEY,
    RETRY,
    StepFailure,
)
from airflow_order_provider.saga.steps import SagaAware
from airflow_order_provider.version_compat import (
    AirflowFailException,
    AirflowTaskTimeout,
    DownstreamTasksSkipped,
    await_decision,
    fail_at_once_on,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.hooks.base import OrderServiceHook
    from airflow_order_provider.saga.steps import Saga

__all__ = [
    "ABANDON",
    "COMPENSATE",
    "DECISION_KEY",
    "FAILURE_KEY",
    "RETRY",
    "OrderCompensationOperator",
    "OrderSagaTask",
    "OrderServiceOperator",
    "OrderStepOperator",
    "idempotency_key",
]

#: Errors that say the request or its credentials are wrong: not business as usual.
MISCONFIGURED = (ServiceAuthenticationError, ServiceValidationError, IdempotencyKeyReusedError)
#: XCom key of a compensation's wait: ``{"state": "waiting"|"manual", "since", "calls", "last_error",
#: "next_try_at", "gives_up_at"}``.
UNDO_KEY = "compensation"
#: A deferred wait is never shorter (not scaled: the costs are Airflow's, in wall-clock time). A
#: trigger that fires before the scheduler has processed the deferring try's exit (the supervisor's
#: late exit, up to 5 s, plus a scheduler loop) meets an Airflow 3.3.2 race in which the resumed task
#: is killed ("Server indicated the task shouldn't be running anymore"); seen with 1 s waits.
MIN_WAIT = timedelta(seconds=10)
#: Failures after which the call may have been carried out although no proven answer came back.
AMBIGUOUS = (ServiceTimeoutError, ServiceUnavailableError, AirflowTaskTimeout, IdempotencyKeyReusedError)


def _growth(backoff: float | bool | None) -> float:
    """The factor retry delays grow by: Airflow 3.1's ``retry_exponential_backoff`` is True for doubling."""
    return 2.0 if backoff is True else float(backoff or 1)


def idempotency_key(order_id: str, action: str) -> str:
    """
    The key under which a service remembers one action of one order.

    It depends only on the order and the action (never on the run or the try), so a retry, a
    cleared task and a second run of the same order all repeat the same request, which the
    service answers from its memory instead of charging, reserving, shipping or emailing again.
    """
    return f"{order_id}:{action}"


def hook_for(service: str, conn_id: str | None = None) -> OrderServiceHook:
    from airflow_order_provider.hooks import hook_class_for

    return hook_class_for(service)(conn_id=conn_id)


class OrderSagaTask(SagaAware):
    """
    What a task of the order saga learns at run time: the validated order, read once from the
    saga's start task, and the results of earlier steps it needs (``inputs``), read once each.

    A task built by :func:`~airflow_order_provider.saga.build_saga` gets ``saga=``; one used on
    its own takes its business arguments instead.
    """

    saga: Saga | None
    inputs: dict[str, tuple[str, str | None]]
    order_id: str | None

    def saga_init(self, saga: Saga | None, inputs: dict[str, tuple[str, str | None]] | None) -> None:
        self.saga = saga
        self.inputs = dict(inputs or {})

    def result_of(self, context: Context, task_id: str, key: str = "return_value") -> Any:
        """An earlier task's XCom, read once per execution of this task."""
        # Created at run time, on the copy Airflow executes (a shallow copy of the parsed task):
        # a cache made in __init__ would be shared by every execution in one process (dag.test()).
        if "_results" not in self.__dict__:
            self._results: dict[tuple[str, str], Any] = {}
        if (task_id, key) not in self._results:
            self._results[task_id, key] = context["ti"].xcom_pull(task_ids=task_id, key=key)
        return self._results[task_id, key]

    def saga_input(self, context: Context) -> dict[str, Any] | None:
        """
        The validated order. A start task that can compute it from the run's conf
        (``saga_input(conf, kwargs)``, a pure function: the order's validation) saves every step
        one read of its XCom from the API server; otherwise its XCom is read.
        """
        assert self.saga is not None
        start = self.saga.start
        derive = getattr(start.factory, "saga_input", None)
        dag_run = context.get("dag_run")
        if callable(derive) and dag_run is not None:
            order = derive(getattr(dag_run, "conf", None), dict(start.kwargs))
            if order is not None:
                return order
        return self.result_of(context, start.task_id)

    def take_order(self, order: dict[str, Any]) -> None:
        """Fill the business arguments that were not given from the validated order."""
        if self.order_id is None:
            self.order_id = order["order_id"]

    def prepare(self, context: Context) -> None:
        """Read the order and the inputs from earlier steps (saga-built operators only)."""
        if self.saga is not None and context.get("ti") is not None:
            order = self.saga_input(context)
            if order is None:
                raise AirflowFailException(f"{self.task_id}: the order was never validated")
            self.take_order(order)
        for name, (task_id, field) in self.inputs.items():
            if getattr(self, name, None) in (None, ""):
                value = self.result_of(context, task_id) or {}
                setattr(self, name, value.get(field) if field else value)

    def order_placed_at(self, context: Context) -> datetime | None:
        """When the order was placed: its run's ``run_after`` (a clear leaves it alone)."""
        dag_run = context.get("dag_run")
        if dag_run is None:
            return None
        return getattr(dag_run, "run_after", None) or dag_run.start_date

    def ship_deadline_near(self, context: Context, at: datetime | None = None) -> bool:
        """
        Whether less than ``expedite_within`` was left before the order's ship deadline at ``at``
        (default now). The deadline counts from when the order was placed, as the business
        deadline alert does.
        """
        placed = self.order_placed_at(context)
        if placed is None:  # called outside a DAG run: no order clock
            return False
        times = order_times()
        left = placed + times.scaled("ship_deadline") - (at or datetime.now(timezone.utc))
        near = left < times.scaled("expedite_within")
        if near:
            self.log.warning("Order %s must ship within %s: expediting", self.order_id, left)
        return near

    def ready_at(self, context: Context) -> datetime | None:
        """
        When this step became ready: when the latest earlier step completed. A step decides its
        request from this instant, so every try (and a clear) sends the same request.
        """
        if self.saga is None:
            return None
        for step in reversed(self.saga.steps_before(self.task_id)):
            result = self.result_of(context, step.task_id)
            if isinstance(result, dict) and result.get("completed_at"):
                return datetime.fromisoformat(result["completed_at"])
        return None



class OrderServiceOperator(OrderSagaTask, BaseOperator):
    """
    Base for an operator that makes business calls to one order service.

    The retry policy, backoff, step timeout, queue and pool come from the service's row of the
    policy table (:mod:`airflow_order_provider.policies`, with the deployment's overrides; a
    compensation takes the service's compensation row); any of them given explicitly or through
    ``default_args`` wins.

    Built by :func:`~airflow_order_provider.saga.build_saga` (``saga=`` given), the operator reads
    the validated order from the saga's start task, once, and the results of earlier steps it needs
    (``inputs``); its business arguments may then be left out. Used on its own, it takes them as
    arguments (templated).

    :param order_id: the order this call belongs to; with ``action`` it makes the idempotency
        key. (templated)
    :param conn_id: connection to the service; defaults to the hook's default connection.
    :param saga: the saga's table, given by the builder.
    :param inputs: ``{argument: (step task id, field)}``: arguments taken from earlier steps'
        results at run time (one XCom read per step).
    """

    #: Service whose policy and hook this operator uses: ``payment``, ``inventory``...
    service: ClassVar[str]
    #: What this operator does, as part of the idempotency key: ``payment.charge``...
    action: ClassVar[str]
    #: Whether it undoes a step (its policy is the service's compensation row).
    is_compensation: ClassVar[bool] = False

    template_fields: Sequence[str] = ("order_id",)
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        order_id: str | None = None,
        conn_id: str | None = None,
        saga: Saga | None = None,
        inputs: dict[str, tuple[str, str | None]] | None = None,
        **kwargs: Any,
    ) -> None:
        policy = policy_for(self.service, compensation=self.is_compensation)
        super().__init__(**with_policy_defaults(kwargs, policy.operator_defaults()))
        self.policy: ServicePolicy = policy
        self.order_id = order_id
        self.conn_id = conn_id
        self.saga_init(saga, inputs)

    @cached_property
    def hook(self) -> OrderServiceHook:
        """The service's hook, created on first use (at run time, never at parse time)."""
        return hook_for(self.service, self.conn_id)

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(str(self.order_id), self.action)

    def is_last_try(self, ti: Any) -> bool:
        max_tries = getattr(ti, "max_tries", None)
        if max_tries is None:
            max_tries = self.retries
        return ti.try_number > max_tries

class OrderStepOperator(OrderServiceOperator):
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

    def take_order(self, order: dict[str, Any]) -> None:
        super().take_order(order)
        if self.on_retries_exhausted in (None, ""):
            self.on_retries_exhausted = (order.get("on_retries_exhausted") or {}).get(self.service)
        if self.workflow_timeout in (None, ""):
            self.workflow_timeout = order.get("workflow_timeout_seconds")

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

    def workflow_limit(self) -> timedelta:
        limit = order_times().workflow_timeout
        if self.workflow_timeout not in (None, ""):
            limit = min(limit, timedelta(seconds=float(self.workflow_timeout)))
        return limit * time_scale()

    def checkpoint(self, context: Context) -> Checkpoint:
        """The order's checkpoint before this step: its cancel signal and its workflow clock."""
        from airflow_order_provider.signals import cancel_request

        dag_run = context["dag_run"]
        clock = WorkflowClock(
            limit=self.workflow_limit(),
            started=dag_run.start_date or dag_run.run_after,
            waited=waited_seconds(lambda task_id: self.result_of(context, task_id), self.workflow_clock_excludes),
        )
        return Checkpoint(
            saga_id=str(self.order_id), step=self.task_id, read_cancel=cancel_request, clock=clock,
            cancelled_error=OrderCancelledError, timeout_error=WorkflowTimeoutError,
            label=f"order {self.order_id}",
        )

    def workflow_time_left(self, context: Context) -> timedelta:
        """The order's workflow timeout less the time it has used (waits excluded)."""
        clock = self.checkpoint(context).clock
        assert clock is not None
        return clock.time_left()

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

    # -- answers that prove nothing about now -------------------------------------------------------

    def call_idempotent(self, send: Any) -> dict[str, Any]:
        """
        Send the step's request (``send()``), and make sure its answer is true now.

        A replayed answer is checked against the record as it is now. A 409 for a key used with
        another request means an earlier try (whose answer was lost) was carried out with that other
        request: the step adopts the record it left, when there is exactly one in effect.
        """
        try:
            answer = send()
        except IdempotencyKeyReusedError:
            adopted = self.single_live_record()
            if adopted is None:
                raise
            self.log.warning(
                "%s for order %s: an earlier try was carried out with another request; adopting %s %s",
                self.task_id, self.order_id, self.hook.record_id_field, adopted.get(self.hook.record_id_field),
            )
            return adopted
        except (ServiceUnavailableError, ServiceTimeoutError) as error:
            adopted = self.adopt_after_lost_answer(error)
            if adopted is None:
                raise
            return adopted
        if getattr(answer, "replayed", False) and self.hook.undone_statuses:
            record_id = answer.get(self.hook.record_id_field)
            now = self.hook.get_record(record_id) if record_id else answer
            if now.get("status") in self.hook.undone_statuses:
                raise OrderAlreadyUndoneError(
                    f"{self.hook.record_id_field} {record_id} of order {self.order_id} is {now.get('status')}:"
                    " the order was cancelled before. Nothing more is done for it; place it again under a"
                    " new order id."
                )
            self.log.info("%s for order %s was done before: %s %s is %s", self.task_id, self.order_id,
                          self.hook.record_id_field, record_id, now.get("status"))
        return answer

    def adopt_after_lost_answer(self, error: OrderServiceError) -> dict[str, Any] | None:
        """
        The record this step's request left, when its answer was lost (a 5xx, a timeout) and the
        service now shows exactly one record of the order in effect: the request was carried out.
        Adopting it at once, instead of failing the try, is what a retry would get (the replay of
        that record) without the wait, in which the carrier may pick the parcel up and the order
        can no longer be undone. When the service cannot say (it still fails) or shows nothing,
        the try fails as before and the retry policy decides.
        """
        if not self.hook.live_statuses:
            return None
        try:
            adopted = self.single_live_record()
        except OrderServiceError as asking:
            self.log.info("%s for order %s: %s, and the service cannot say what it did (%s)",
                          self.task_id, self.order_id, error, asking)
            return None
        if adopted is not None:
            self.log.warning(
                "%s for order %s: the answer was lost (%s), but the request was carried out; adopting %s %s",
                self.task_id, self.order_id, error, self.hook.record_id_field, adopted.get(self.hook.record_id_field),
            )
        return adopted

    def single_live_record(self) -> dict[str, Any] | None:
        """The one record of the order in effect at the service that this step could have left, if exactly one."""
        live = self.adoptable(self.hook.live_for_order(str(self.order_id)))
        return live[0] if len(live) == 1 else None

    def adoptable(self, live: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Of the order's records in effect at the service, those this step's request could have left."""
        return live

    # -- failure ------------------------------------------------------------------------------------

    def _record_failure(self, context: Context, error: BaseException, mode: str) -> None:
        ti = context["ti"]
        never_retried = self.policy.is_never_retried(error) or isinstance(error, AirflowFailException)
        final = never_retried or self.is_last_try(ti)
        error_type = getattr(error, "error_type", type(error).__name__)
        failure = StepFailure(
            step=self.task_id,
            service=self.service,
            error_type=error_type,
            message=getattr(error, "message", None) or str(error) or error_type,
            transient=isinstance(error, (TransientServiceError, AirflowTaskTimeout)),
            ambiguous=isinstance(error, AMBIGUOUS),
            never_retried=never_retried,
            misconfigured=isinstance(error, MISCONFIGURED),
            try_number=ti.try_number,
            final=final,
            on_retries_exhausted=mode,
        )
        failure.push(ti)
        attempts = self.retries + 1
        if not final:
            self.log.warning(
                "Try %d of %d of %s for order %s failed: %s. Airflow tries again after its retry delay"
                " (%s, growing x%g, at most %s): try %d of %d.",
                ti.try_number, attempts, self.task_id, self.order_id, failure.message, self.retry_delay,
                _growth(self.retry_exponential_backoff), self.max_retry_delay, ti.try_number + 1, attempts,
            )
            return
        if never_retried:
            self.log.error(
                "%s for order %s failed for good: %s is never retried. %s",
                self.task_id, self.order_id, error_type, failure.message,
            )
        else:
            self.log.error(
                "%s for order %s failed on its last try (%d of %d): %s. On retries exhausted: %s.",
                self.task_id, self.order_id, ti.try_number, attempts, failure.message, mode,
            )
            if mode == "pause":
                self._ask_for_decision(context, failure)

    # -- pause: a person decides -------------------------------------------------------------

    def _ask_for_decision(self, context: Context, failure: StepFailure) -> None:
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        timeout = max(self.policy.scaled(self.policy.decision_timeout), timedelta(seconds=1))
        upsert_hitl_detail(
            ti_id=context["task_instance"].id,
            options=[RETRY, COMPENSATE, ABANDON],
            subject=f"Order {self.order_id}: {self.task_id} failed after {self.retries + 1} tries",
            body=(
                f"**{self.task_id}** of order **{self.order_id}** failed on every try.\n\n"
                f"Last error: `{failure.error_type}`: {failure.message}\n\n"
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
        await_decision(
            self, ti_id=context["task_instance"].id, options=[RETRY, COMPENSATE, ABANDON], defaults=[COMPENSATE],
            timeout=timeout, method_name="resume_after_decision",
        )

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
    Undo one step. Idempotent: a repeat, or a record already undone, changes nothing.

    It undoes what is in effect at the service for the order now (asked through the hook), so
    that a step whose answer was lost, or that ran more than once, is undone all the same. Given
    the id of the step's record, it undoes that one only.

    A stuck undo keeps trying without holding a worker: after its quick tries (Airflow retries, the
    service's compensation row of the policy table), its last try waits between calls deferred to
    the triggerer (``DateTimeTrigger``: no worker slot, no pool slot; the grid shows it deferred),
    the waits growing to ``max_wait_interval``, until the row's ``horizon`` (hours). Only then does
    it fail, and operations are asked to intervene. Each wait is recorded under the XCom key
    ``compensation`` (:data:`UNDO_KEY`): since when, how many calls, the last error, the next try.
    An undo that succeeds after it was cleared from a manual alert resolves that alert.

    A record that can no longer be undone (a dispatched shipment) fails it at once with
    :class:`~airflow_order_provider.exceptions.CompensationImpossibleError`, except for a step
    that rolls forward (``rolls_forward`` in the saga's table): the order is then finished instead;
    this task succeeds, skips the other compensations and lets the saga's roll forward run.

    Subclasses name the record's id argument (``id_field``) and nothing else: the undo itself is
    the hook's.

    :param reason: why the order is being undone; recorded by the service. (templated)
    """

    is_compensation = True
    template_fields: Sequence[str] = ("order_id", "reason")
    ui_color = "#fdecea"

    #: Name of the argument with the id of the record to undo (``payment_id``...).
    id_field: ClassVar[str]

    def __init__(self, *, reason: str | None = None, **kwargs: Any) -> None:
        object_id = kwargs.pop(self.id_field, None)
        super().__init__(**kwargs)
        self.reason = reason
        setattr(self, self.id_field, object_id)

    @property
    def settled_statuses(self) -> frozenset[str]:
        return self.hook.undone_statuses

    def live_ids(self, order_id: str | None = None) -> list[str]:
        """Ids of the order's records at the service that are still in effect."""
        live = self.hook.live_for_order(order_id or str(self.order_id))
        return [record[self.hook.record_id_field] for record in live]

    def _prepare_undo(self, context: Context) -> None:
        self.prepare(context)
        if self.saga is not None and not getattr(self, self.id_field):
            # The step's own record when it has a proven result; else whatever is in effect.
            result = self.result_of(context, self.step_task_id)
            if isinstance(result, dict) and result.get(self.id_field):
                setattr(self, self.id_field, result[self.id_field])
        if self.reason in (None, "") and self.saga is not None:
            from airflow_order_provider.saga.planner import PLAN_KEY

            plan = self.result_of(context, self.saga.plan.task_id, key=PLAN_KEY) or {}
            self.reason = plan.get("reason")
        self.reason = self.reason or "order cancelled"

    @property
    def step_task_id(self) -> str:
        """The step this task undoes (from the saga's table)."""
        assert self.saga is not None
        return next(s.task_id for s in self.saga.steps if s.compensation == self.task_id)

    @property
    def rolls_forward(self) -> bool:
        return self.saga is not None and self.saga.roll_forward is not None and self.saga.step(
            self.step_task_id).rolls_forward

    def execute(self, context: Context) -> dict[str, Any]:
        with fail_at_once_on(self.policy.is_never_retried):  # the retry policy's FAIL before Airflow 3.3
            return self._attempt(context, None)

    def retry_after_wait(self, context: Context, event: Any = None, waiting: dict[str, Any] | None = None
                         ) -> dict[str, Any]:
        """Resumed by the triggerer at the next try's time: try again."""
        # The wait so far is the XCom this try recorded (kept across the deferral; dag.test() does
        # not pass the deferral's kwargs back), else the kwargs.
        recorded = context["ti"].xcom_pull(task_ids=self.task_id, key=UNDO_KEY)
        with fail_at_once_on(self.policy.is_never_retried):
            return self._attempt(context, recorded if isinstance(recorded, dict) and recorded.get("since") else waiting)

    def _attempt(self, context: Context, waiting: dict[str, Any] | None) -> dict[str, Any]:
        self._prepare_undo(context)
        try:
            result = self.compensate(getattr(self, self.id_field))
        except CompensationImpossibleError as error:
            if not self.rolls_forward:
                raise
            return self._roll_forward(context, error)
        except Exception as error:
            if not self._may_wait(context, error):
                raise
            self._wait(context, error, waiting)  # raises TaskDeferred, or the error past the horizon
            raise
        if waiting:
            self.log.info("%s of order %s succeeded after %d calls since %s", self.task_id, self.order_id,
                          int(waiting.get("calls", 0)) + 1, waiting.get("since"))
        self._resolve_manual_alert(context)
        return self._done(context, result)

    def _done(self, context: Context, result: dict[str, Any]) -> dict[str, Any]:
        if self.rolls_forward:
            # Undone: the order is not finished forward. The skip is this task's own report, so the
            # scheduler needs no pass of its own for it.
            assert self.saga is not None and self.saga.roll_forward is not None
            context["ti"].xcom_push(key="return_value", value=result)
            raise DownstreamTasksSkipped(tasks=[self.saga.roll_forward.task_id])
        return result

    def _roll_forward(self, context: Context, error: CompensationImpossibleError) -> dict[str, Any]:
        """The step completed for real: skip every other undo and let the saga finish the order."""
        assert self.saga is not None and self.saga.roll_forward is not None
        result = {"status": "past_point_of_no_return", "why": str(error), "step": self.step_task_id}
        self.log.warning("%s of order %s cannot be undone (%s): the order rolls forward instead", self.step_task_id,
                         self.order_id, error)
        context["ti"].xcom_push(key="return_value", value=result)
        others = [t.task_id for t in self.downstream_list if t.task_id != self.saga.roll_forward.task_id]
        raise DownstreamTasksSkipped(tasks=others)

    # -- a stuck undo waits, deferred ------------------------------------------------------------------

    def _may_wait(self, context: Context, error: BaseException) -> bool:
        """Only the last quick try waits, only for trouble a later call may clear, only with a horizon."""
        if self.policy.is_never_retried(error) or isinstance(error, AirflowFailException) or "ti" not in context:
            return False
        return self.policy.horizon > timedelta(0) and self.is_last_try(context["ti"])

    def _wait(self, context: Context, error: BaseException, waiting: dict[str, Any] | None) -> None:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        now = datetime.now(timezone.utc)
        calls = int((waiting or {}).get("calls", 0)) + 1
        since = datetime.fromisoformat(waiting["since"]) if waiting else now
        gives_up_at = since + self.policy.scaled(self.policy.horizon)
        interval = min(
            self.policy.scaled(self.policy.wait_interval) * float(self.policy.backoff or 1) ** (calls - 1),
            self.policy.scaled(self.policy.max_wait_interval),
        )
        next_try_at = now + max(interval, MIN_WAIT)
        message = f"{type(error).__name__}: {getattr(error, 'message', None) or error}"
        state = {
            "state": "waiting", "since": since.isoformat(), "calls": calls, "last_error": message,
            "next_try_at": next_try_at.isoformat(), "gives_up_at": gives_up_at.isoformat(),
        }
        if next_try_at > gives_up_at:
            state.update(state="manual", next_try_at=None)
            context["ti"].xcom_push(key=UNDO_KEY, value=state)
            self.log.error("%s of order %s has kept failing since %s (%d calls; horizon %s): %s. Giving up.",
                           self.task_id, self.order_id, state["since"], calls, gives_up_at.isoformat(), message)
            return  # the caller raises the error: the task fails for good, operations are alerted
        context["ti"].xcom_push(key=UNDO_KEY, value=state)
        self.log.warning(
            "%s of order %s failed (%s), call %d since %s. Waiting deferred until %s (no worker held), then"
            " trying again; manual intervention after %s.",
            self.task_id, self.order_id, message, calls, state["since"], state["next_try_at"], state["gives_up_at"],
        )
        self.defer(trigger=DateTimeTrigger(moment=next_try_at), method_name="retry_after_wait",
                   kwargs={"waiting": state})

    def _resolve_manual_alert(self, context: Context) -> None:
        """
        A try after the last one exists only when a person cleared the task, i.e. after the manual
        alert: say it is resolved, so that nobody settles the order twice.
        """
        ti = context.get("ti")
        if ti is None or ti.try_number <= self.retries + 1:
            return
        from airflow_order_provider.notifications.alerts import resolved_alert

        resolved_alert(order_id=str(self.order_id), task_id=self.task_id,
                       run_id=str(getattr(context.get("dag_run"), "run_id", "") or ""), try_number=ti.try_number)

    def compensate(self, object_id: str | None) -> dict[str, Any]:
        ids = [object_id] if object_id else self.live_ids()
        if not ids:
            self.log.info("Order %s has nothing to undo at the %s service", self.order_id, self.service)
            return {self.id_field: None, "status": "nothing_to_undo"}
        results = [self._undo_once(object_id) for object_id in ids]
        return results[0] if len(results) == 1 else {"undone": results, "status": "undone"}

    def _undo_once(self, object_id: str) -> dict[str, Any]:
        try:
            undone = self.hook.undo(object_id, reason=str(self.reason), idempotency_key=self.idempotency_key)
        except (InvalidStateError, NotFoundError) as error:
            # Already undone under another key (e.g. by hand), or settled by the service itself.
            record = self.hook.get_record(object_id) if isinstance(error, InvalidStateError) else None
            if record is not None and record.get("status") in self.settled_statuses:
                self.log.info("%s %s is already %s: nothing to undo", self.id_field, object_id, record["status"])
                return {self.id_field: object_id, "status": record["status"]}
            if record is not None:
                raise CompensationImpossibleError(
                    f"{self.id_field} {object_id} of order {self.order_id} is {record.get('status')} and can no"
                    f" longer be undone: {error.message}"
                ) from error
            raise
        self.log.info("Undid %s %s of order %s: %s", self.id_field, object_id, self.order_id, undone.get("status"))
        return {key: undone.get(key) for key in self.result_fields if key in undone} or dict(undone)

    #: Fields of the service's answer kept as the compensation's result.
    result_fields: ClassVar[tuple[str, ...]] = ()
