"""
The Required Actions pause: a step out of retries whose ``on_retries_exhausted`` is ``pause`` asks a
person, in Airflow's Required Actions, to retry it, compensate the order or abandon it; no answer
within the policy's ``decision_timeout`` counts as compensate.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_order_provider.exceptions import StepAbandonedError, StepFailedError
from airflow_order_provider.saga.failure import ABANDON, COMPENSATE, DECISION_KEY, RETRY, StepFailure
from airflow_order_provider.version_compat import await_decision

if TYPE_CHECKING:
    from airflow.sdk import Context


class PausesForDecision:
    """
    Mixed into a step (:class:`~airflow_order_provider.operators.step.OrderStepOperator`): it needs
    the step's ``policy``, ``retries``, ``order_id``, ``task_id``, ``log`` and ``execute``.
    """

    def ask_for_decision(self, context: Context, failure: StepFailure) -> None:
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
