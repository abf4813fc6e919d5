"""
Required Actions answers that outlive the try they answered.

Airflow 3.3.2's scheduler can fail a task that a Required Actions answer has just resumed: when the
answer comes within a moment of the request (an automated approver, a webhook), the resumed task
is queued before the scheduler has processed the exit of the try that asked, and that exit then
fails it ("finished with state success, but the task instance's state attribute is queued"). The
answer is recorded in Airflow's ``hitl_detail`` table, but a task cannot read it back (the task
supervisor relays no Required Actions reads), and the next try's request would clear it.

So the API server records each answer where the task's next try can read it: in the task's state
store (Airflow 3.3's per-task key-value store, which keeps its keys across tries), under
:data:`ANSWER_KEY`, with the id and try number of the task instance it answered.
:class:`RecordRequiredActionAnswers` is a root middleware of the API server (registered by the
provider's plugin) that writes it after every successful ``PATCH .../hitlDetails``;
:func:`recorded_answer` reads it back in the try that asked (run again from ``execute``) or the one
after it. Which one runs after the race depends on when the scheduler fails the resumed task: while
it is still queued, the task instance keeps its id; once it runs, Airflow records that try and gives
the next one a new id.
Airflow clears the store when the task succeeds.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any

log = logging.getLogger(__name__)

#: The task state store key of a Required Actions answer.
ANSWER_KEY = "order_provider.required_action_answer"
#: How long a recorded answer is kept (a retry comes within seconds; a day is generous).
ANSWER_RETENTION = timedelta(days=1)

#: Airflow's REST path that answers one Required Actions request.
_ANSWER_PATH = re.compile(
    r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/(?P<run_id>[^/]+)/taskInstances/(?P<task_id>[^/]+)"
    r"/(?P<map_index>-?\d+)/hitlDetails/?$"
)


def recorded_answer(context: Any) -> dict[str, Any] | None:
    """
    The Required Actions answer recorded for this very task instance, as the event that
    ``HITLOperator.execute_complete`` takes; None when there is none, or on an Airflow without a
    task state store (before 3.3).
    """
    store = context.get("task_state_store") if hasattr(context, "get") else None
    if store is None:
        return None
    # Read on every try, the first included: Airflow 3.3.2 can run an answered first try's
    # ``execute`` again (same id, try number 1), and asking again would clear the answer.
    recorded = store.get(ANSWER_KEY)
    if not isinstance(recorded, dict):
        return None
    ti = context["ti"]
    same_try = str(recorded.get("ti_id")) == str(ti.id)
    # The answered try or the one before it; a later one too, as the try number a task is handed
    # can lag the one its answer was recorded for.
    recent_try = recorded.get("try_number") is not None and ti.try_number <= recorded["try_number"] + 1
    if not (same_try or recent_try):
        return None
    responded_at = recorded.get("responded_at")
    return {
        "chosen_options": list(recorded.get("chosen_options") or []),
        "params_input": recorded.get("params_input") or {},
        "responded_at": datetime.fromisoformat(responded_at) if responded_at else datetime.now(timezone.utc),
        "responded_by_user": recorded.get("responded_by"),
    }


def record_answer(dag_id: str, run_id: str, task_id: str, map_index: int, answer: dict[str, Any]) -> None:
    """Write ``answer`` (Airflow's answer to ``PATCH .../hitlDetails``) to the task's state store."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.state import TaskScope, get_state_backend
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        answered = session.execute(
            select(TaskInstance.id, TaskInstance.try_number).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id, TaskInstance.map_index == map_index,
            )
        ).first()
        if answered is None:
            return
        value = {
            "ti_id": str(answered.id),
            "try_number": answered.try_number,
            "chosen_options": answer.get("chosen_options"),
            "params_input": answer.get("params_input") or {},
            "responded_at": answer.get("responded_at"),
            "responded_by": answer.get("responded_by") or answer.get("responded_by_user"),
        }
        get_state_backend().set(
            TaskScope(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index),
            ANSWER_KEY,
            json.dumps(value),
            expires_at=datetime.now(timezone.utc) + ANSWER_RETENTION,
            session=session,
        )


class RecordRequiredActionAnswers:
    """
    API server root middleware: after a successful ``PATCH .../hitlDetails`` (the UI's Required
    Actions, or a client of Airflow's REST API), record the answer with :func:`record_answer`
    before the answer's response leaves, so that a retry of the answered task finds it.
    Any DAG's answers are recorded (a row each, kept a day): the middleware cannot tell which
    tasks read them, and the row costs one write per answer.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "PATCH":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        root = scope.get("root_path", "") or ""
        match = _ANSWER_PATH.search(path[len(root):] if root and path.startswith(root) else path)
        if match is None:
            await self.app(scope, receive, send)
            return

        held: list[dict[str, Any]] = []

        async def hold(message: dict[str, Any]) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        if start is not None and start.get("status") == 200:
            body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
            await self._record(match, body)
        for message in held:
            await send(message)

    @staticmethod
    async def _record(match: re.Match, body: bytes) -> None:
        from urllib.parse import unquote

        from starlette.concurrency import run_in_threadpool

        try:
            answer = json.loads(body)
            await run_in_threadpool(
                record_answer, unquote(match["dag_id"]), unquote(match["run_id"]), unquote(match["task_id"]),
                int(match["map_index"]), answer,
            )
        except Exception:  # the answer itself stands; only its copy for a retry is missing
            log.exception("Could not record the Required Actions answer of %s", match.group(0))
