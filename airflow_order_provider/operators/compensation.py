"""
Undo one step of the order: what is in effect at the service for the order now, idempotently; a
stuck undo waits deferred (no worker held) up to its horizon; a step past its point of no return
rolls the order forward instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_order_provider.exceptions import CompensationImpossibleError, InvalidStateError, NotFoundError
from airflow_order_provider.failures import is_never_retried
from airflow_order_provider.operators.base import OrderServiceOperator
from airflow_order_provider.version_compat import DownstreamTasksSkipped, fail_at_once_on

if TYPE_CHECKING:
    from airflow.sdk import Context

#: XCom key of a compensation's wait: ``{"state": "waiting"|"manual", "since", "calls", "last_error",
#: "next_try_at", "gives_up_at"}``.
UNDO_KEY = "compensation"
#: A deferred wait is never shorter (not scaled: the costs are Airflow's, in wall-clock time). A
#: trigger that fires before the scheduler has processed the deferring try's exit (the supervisor's
#: late exit, up to 5 s, plus a scheduler loop) meets an Airflow 3.3.2 race in which the resumed task
#: is killed ("Server indicated the task shouldn't be running anymore"); seen with 1 s waits.
MIN_WAIT = timedelta(seconds=10)


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
        if is_never_retried(self.policy, error) or "ti" not in context:
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
