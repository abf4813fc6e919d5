"""
What the order API needs of Airflow's API server where Airflow offers no public interface.

Kept here, beside the other version-dependent code, so that the order API imports only public
names and these ones; each function says which upstream code it calls and on which releases
that code was read (apache-airflow 3.1.8, 3.2.2 and 3.3.2).
"""

from __future__ import annotations

from typing import Any

from airflow_order_provider.version_compat import AIRFLOW_V_3_2_PLUS

if AIRFLOW_V_3_2_PLUS:
    #: What creating a run raises for a conf its DAG's params refuse (or a run id Airflow refuses):
    #: ``ValueError`` subclasses from 3.2, where Airflow's trigger endpoint catches ValueError alone.
    RUN_REFUSED: tuple[type[Exception], ...] = (ValueError,)
else:
    # 3.1: the params' ParamValidationError is no ValueError; its trigger endpoint catches both.
    from airflow.exceptions import ParamValidationError

    RUN_REFUSED = (ValueError, ParamValidationError)


class _Responder:
    """The identity an answer is recorded under (the endpoint's authenticated-user interface)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def get_id(self) -> str:
        return self._name

    def get_name(self) -> str:
        return self._name


def answer_required_action(
    session: Any, *, dag_id: str, run_id: str, task_id: str, chosen_options: list[str], responder: str
) -> bool:
    """
    Answer a pending Required Actions (human-in-the-loop) request in ``session``, as
    ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails`` does,
    recorded as answered by ``responder``. False when there is nothing to answer (no request, or
    it was answered already).

    Airflow 3.1 to 3.3 answer a request only through that endpoint; no public function does it.
    So this calls the endpoint's handler, ``airflow.api_fastapi.core_api.routes.public.hitl.
    update_hitl_detail`` (same signature in 3.1.8, 3.2.2 and 3.3.2), rather than writing the
    ``hitl_detail`` row itself, to keep the endpoint's ordering guarantees. In 3.3.2 it locks
    the task instance's row, then the request's row, the order in which the Execution API's park
    transition takes them, and resumes a task parked in ``awaiting_input`` or deferred in the same
    transaction: an answer racing the task's park (or a clear) can neither deadlock nor be lost.
    In 3.1.8 and 3.2.2 it records the answer only; the task's ``HITLTrigger`` on the triggerer
    reads it.
    """
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from fastapi import HTTPException

    try:
        update_hitl_detail(
            dag_id=dag_id, dag_run_id=run_id, task_id=task_id,
            update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=chosen_options, params_input={}),
            user=_Responder(responder), session=session,
        )
    except HTTPException:  # not asked (yet), or answered already
        return False
    return True
