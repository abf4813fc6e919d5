"""
The rollback of a saga: choose the compensations when a step fails for good, and record the result.

:class:`PlanCompensationOperator` is a branch task downstream of every rollback step, triggered
``one_failed``. It reads the saga's shape from its table (:class:`~airflow_order_provider.saga.steps.Saga`)
and decides from Airflow's task states, the failed step's :class:`StepFailure` and, for every step
that has a compensation but no proven result, the truth at the outside service
(:meth:`PlanCompensationOperator.may_have_taken_effect`, overridden by a saga that can ask).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_order_provider.saga.failure import ABANDON, DECISION_KEY, StepFailure
from airflow_order_provider.saga.steps import SagaAware
from airflow_order_provider.version_compat import AirflowSkipException, BaseBranchOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.saga.steps import Saga

#: XCom key of the planner's decision: why the saga is undone and which compensations run.
PLAN_KEY = "plan"
#: Task states of a step that was never attempted in this run.
NOT_ATTEMPTED = frozenset({None, "none", "", "skipped", "upstream_failed", "removed", "scheduled", "queued"})


class PlanCompensationOperator(BaseBranchOperator, SagaAware):
    """
    When a step fails for good, choose the compensations to run, latest step first.

    Each rollback step that completed and has a compensation is undone. A step that was attempted
    but has no result (it failed, its worker died) is undone too when its call may have taken
    effect (:meth:`may_have_taken_effect`). Nothing is undone when the failed step's
    ``on_retries_exhausted`` is ``fail``, or a person chose to abandon the saga.

    Pushes the plan under the XCom key ``plan``: ``{"failed_step", "error_type", "reason",
    "decision", "outcome", "compensations"}`` with the saga's id field.

    :param saga: the saga's table.
    :param saga_id: the saga run's id; default: the ``saga.id_field`` of the start task's result.
        (templated)
    """

    template_fields: Sequence[str] = ("saga_id",)
    ui_color = "#fff4e5"

    def __init__(self, *, saga: Saga, saga_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.saga = saga
        self.saga_id = saga_id

    def _states(self, context: Context) -> dict[str, str | None]:
        ti = context["ti"]
        steps = [step.task_id for step in self.saga.rollback_steps]
        found = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=steps)
        return {task: (None if state is None else str(state)) for task, state in found.get(ti.run_id, {}).items()}

    def may_have_taken_effect(self, step: str, saga_id: str, failure: StepFailure | None) -> bool:
        """
        Whether an attempted step without a result may have changed the outside world.

        This default can only go by the failure record: no record (the worker died) or an
        ambiguous one means maybe. A saga that can ask its services overrides it.
        """
        return failure is None or failure.ambiguous

    def default_exhausted_mode(self, step: str, context: Context) -> str:
        """What a step does when it fails for good, when its failure record cannot say."""
        return "compensate"

    def choose_branch(self, context: Context) -> list[str]:
        ti = context["ti"]
        start = ti.xcom_pull(task_ids=self.saga.start.task_id)
        if start is None:
            raise AirflowSkipException(f"The {self.saga.name} was never validated: no step ran, nothing to compensate")
        saga_id = self.saga_id or str(start.get(self.saga.id_field))
        states = self._states(context)
        steps = [step.task_id for step in self.saga.rollback_steps]
        completed = [s for s in steps if states.get(s) == "success"]
        failed = [s for s in steps if states.get(s) == "failed"]
        missing = [s for s in steps if s not in completed and states.get(s) != "skipped"]
        failed_step = (failed or missing or [None])[0]
        if failed_step is None:
            self.log.info("Every step of %s %s completed: nothing to compensate", self.saga.name, saga_id)
            return []

        failure = StepFailure.pull(ti, failed_step)
        decision = ti.xcom_pull(task_ids=failed_step, key=DECISION_KEY) or {}
        reason = failure.reason if failure else f"{failed_step} failed (see its log)"
        mode = (failure.on_retries_exhausted if failure else None) or self.default_exhausted_mode(failed_step, context)
        plan: dict[str, Any] = {
            self.saga.id_field: saga_id,
            "failed_step": failed_step,
            "error_type": failure.error_type if failure else None,
            "reason": reason,
            "decision": decision.get("choice"),
            "compensations": [],
        }
        if decision.get("choice") == ABANDON:
            plan["outcome"] = "abandoned"
        elif mode == "fail" and not (failure and failure.never_retried):
            plan["outcome"] = "failed"
        else:
            to_undo = []
            for step in reversed(steps):
                compensation = self.saga.compensations[step]
                if not compensation:
                    continue
                if step in completed:
                    to_undo.append(compensation)
                elif states.get(step) not in NOT_ATTEMPTED:
                    # Attempted without a proven result: a lost answer, a worker that died, a cancel
                    # read after an earlier try went through. Ask before deciding.
                    record = failure if step == failed_step else StepFailure.pull(ti, step)
                    if self.may_have_taken_effect(step, saga_id, record):
                        to_undo.append(compensation)
            plan["outcome"] = "cancelled"
            plan["compensations"] = to_undo

        ti.xcom_push(key=PLAN_KEY, value=plan)
        if plan["outcome"] != "cancelled":
            self.log.warning("%s %s %s: %s. Nothing is undone.", self.saga.name.capitalize(), saga_id,
                             plan["outcome"], reason)
            return []
        self.log.info(
            "%s %s: %s. Compensating, in this order: %s", self.saga.name.capitalize(), saga_id, reason,
            ", ".join(plan["compensations"]) or "nothing (no step completed)",
        )
        return [*plan["compensations"], self.saga.cancelled.task_id]


class SagaCancelledOperator(BaseOperator, SagaAware):
    """
    Record the rolled-back saga once its compensations are done.

    Its XCom is the saga's result: ``{<id field>, "status": "cancelled", "reason", "failed_step",
    "compensated": [...]}``. The run still ends failed: the saga did not complete, and the failed
    step stays red in the grid.

    :param saga: the saga's table.
    """

    ui_color = "#fdecea"

    def __init__(self, *, saga: Saga, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.saga = saga

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids=self.saga.plan.task_id, key=PLAN_KEY) or {}
        compensated = [
            {"task": task_id, **(ti.xcom_pull(task_ids=task_id) or {})} for task_id in plan.get("compensations", [])
        ]
        saga_id = plan.get(self.saga.id_field)
        result = {
            self.saga.id_field: saga_id,
            "status": "cancelled",
            "reason": plan.get("reason"),
            "failed_step": plan.get("failed_step"),
            "compensated": compensated,
        }
        self.log.info("%s %s cancelled (%s); undone: %s", self.saga.name.capitalize(), saga_id, result["reason"],
                      [c["task"] for c in compensated] or "nothing")
        return result
