"""
Examine a run on the scheduler's next loop when one of its tasks reports a new state.

Airflow 3.3's scheduler examines at most ``[scheduler] max_dagruns_per_loop_to_schedule`` running
runs per loop, those with ``last_scheduling_decision`` NULL first, then the least recently
examined (``DagRun.get_running_dag_runs_to_examine``). A task that finishes reports it through the
Execution API, which does not touch its run, and Airflow 3 has no mini scheduler: the run's next
step waits until the round robin over every open run comes back to it. With hundreds of orders
waiting for a person or the carrier, that is every step of every order waiting for all of them.

With ``[order_provider] nudge_runs`` the provider's plugin adds :class:`NudgeRunsMiddleware` to the
API server: after each successful ``PATCH /execution/task-instances/{id}/state`` (a task finished,
failed, is up for retry, deferred or awaits input) and ``.../skip-downstream``, it sets the run's
``last_scheduling_decision`` to NULL, the value Airflow itself gives a run it must examine first
(a new run, a cleared one). The scheduler's next loop then takes that run first. This changes only
the order in which runs are examined, for every DAG of the deployment (any DAG's steps wait the
same way), never what an examination decides. The runs are still taken with ``SELECT ... FOR
UPDATE SKIP LOCKED``, so with several schedulers one run is examined by one scheduler at a time;
the UPDATE runs in its own transaction after the task's own, and waits for a scheduler's lock on
the run rather than racing it (the run is then examined once more).

Not nudged, and not needing it: a run's first examination (a new run's decision is NULL), a task
resumed by a trigger event or a Required Actions answer (the triggerer or the API server sets it
``scheduled`` and the scheduler queues scheduled tasks without examining their run).
"""

from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger(__name__)

#: Execution API calls after which a run has something for the scheduler to decide.
_STATE_CHANGE = re.compile(
    r"/execution/task-instances/(?P<ti_id>[0-9a-fA-F-]{36})/(?:state|skip-downstream)/?$"
)


def nudge_run_of(ti_id: str) -> None:
    """Set ``last_scheduling_decision`` to NULL on the running run of task instance ``ti_id``."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select, update

    with create_session() as session:
        of_task = select(TaskInstance.dag_id, TaskInstance.run_id).where(TaskInstance.id == ti_id).subquery()
        session.execute(
            update(DagRun)
            .where(
                DagRun.dag_id == of_task.c.dag_id,
                DagRun.run_id == of_task.c.run_id,
                DagRun.state == DagRunState.RUNNING,
                DagRun.last_scheduling_decision.is_not(None),
            )
            .values(last_scheduling_decision=None)
            .execution_options(synchronize_session=False)
        )


class NudgeRunsMiddleware:
    """API server root middleware: :func:`nudge_run_of` after a task's successful state report."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "PATCH":
            await self.app(scope, receive, send)
            return
        match = _STATE_CHANGE.search(scope.get("path", ""))
        if match is None:
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message.get("status", 0))
            await send(message)

        await self.app(scope, receive, watch)
        if status and 200 <= status[0] < 300:
            from starlette.concurrency import run_in_threadpool

            try:
                await run_in_threadpool(nudge_run_of, match["ti_id"])
            except Exception:  # the task's report stands; its run waits for the round robin
                log.exception("Could not nudge the run of task instance %s", match["ti_id"])


def enabled() -> bool:
    """``[order_provider] nudge_runs``."""
    from airflow_order_provider.settings import option_bool

    return option_bool("nudge_runs")
