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

Some decisions fall due later than the report, and no task reports them: a try that is up for
retry becomes ready when its retry delay has passed, a rescheduled sensor at its reschedule date, and
a task failed for good leaves a chain of trigger-rule decisions (``upstream_failed``, the planner,
the run's final state) that an examination settles one link at a time. For these the middleware
also nudges the run again when the decision falls due: at the next retry time, at the reschedule
date, and a few times in the seconds after a final failure (:data:`AFTER_FAILURE`). These follow-ups
are kept in the API server's memory; one lost to a restart leaves its run to the round robin, as
without the nudge. With the nudge, ``[scheduler] max_dagruns_per_loop_to_schedule`` can be small
(the shipped profile's 2): what is due is examined first, and the round robin over waiting runs
only serves what nobody reported.

Not nudged, and not needing it: a run's first examination (a new run's decision is NULL), a task
resumed by a trigger event or a Required Actions answer (the triggerer or the API server sets it
``scheduled`` and the scheduler queues scheduled tasks without examining their run).
"""

from __future__ import annotations

import functools
import heapq
import json
import logging
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

#: Seconds after a task's final failure at which its run is nudged again: each examination settles
#: one link of the trigger-rule decisions that follow (downstream ``upstream_failed``, the run's end).
AFTER_FAILURE = (2.0, 5.0, 10.0)
#: A retry or a reschedule is nudged this long after it falls due (the scheduler compares with now).
DUE_MARGIN = 0.2

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


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@functools.cache
def _dag_bag() -> Any:
    """
    One DBDagBag per process (it keeps each serialized DAG version it has read); None before
    Airflow 3.1, which has none: the round robin then serves the retry.
    """
    try:
        from airflow.models.dagbag import DBDagBag
    except ImportError:
        return None
    return DBDagBag()


def next_retry_at(ti_id: str, end_date: datetime | None, delay_s: float | None) -> datetime | None:
    """
    When the try of ``ti_id`` that is up for retry becomes ready: its end plus the delay its retry
    policy chose, else Airflow's own computation from the task's ``retry_delay`` (exponential
    back-off, ``max_retry_delay``), read from the serialized DAG.
    """
    from datetime import timedelta

    if end_date is not None and delay_s is not None:
        return end_date + timedelta(seconds=delay_s)
    dag_bag = _dag_bag()
    if dag_bag is None:
        return None
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(select(TaskInstance).where(TaskInstance.id == ti_id))
        if ti is None or ti.end_date is None:
            return None
        run = session.scalar(select(DagRun).where(DagRun.dag_id == ti.dag_id, DagRun.run_id == ti.run_id))
        dag = dag_bag.get_dag_for_run(run, session=session) if run is not None else None
        if dag is None or not dag.has_task(ti.task_id):
            return None
        ti.task = dag.get_task(ti.task_id)
        return ti.next_retry_datetime()


def follow_ups(report: dict[str, Any]) -> list[float | datetime]:
    """
    When, after a task's state report (the Execution API's PATCH body), its run has a decision due
    that no task will report: seconds from now (a final failure's chain), or an instant (a retry's
    ready time is resolved by the caller; a reschedule date is given).
    """
    state = report.get("state")
    if state == "failed":
        return list(AFTER_FAILURE)
    if state == "up_for_reschedule":
        when = _parse_time(report.get("reschedule_date"))
        return [when] if when else []
    return []


class _FollowUps:
    """The follow-up nudges of one API-server process: a heap of due times and one daemon thread."""

    def __init__(self) -> None:
        self._due: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, at: float, ti_id: str) -> None:
        with self._cond:
            heapq.heappush(self._due, (at, ti_id))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="order-nudge-follow-ups", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.time():
                    self._cond.wait(timeout=(self._due[0][0] - time.time()) if self._due else None)
                _, ti_id = heapq.heappop(self._due)
            try:
                nudge_run_of(ti_id)
            except Exception:  # the run waits for the round robin
                log.exception("Could not nudge the run of task instance %s", ti_id)


_FOLLOW_UPS = _FollowUps()


def schedule_follow_ups(ti_id: str, report: dict[str, Any]) -> None:
    """Nudge the run of ``ti_id`` again when the decisions its report leaves for later fall due."""
    now = time.time()
    due: list[float | datetime] = follow_ups(report)
    if report.get("state") == "up_for_retry":
        when = next_retry_at(ti_id, _parse_time(report.get("end_date")), report.get("retry_delay_seconds"))
        due = [when] if when else []
    for at in due:
        at_s = at.timestamp() + DUE_MARGIN if isinstance(at, datetime) else now + at
        _FOLLOW_UPS.add(max(at_s, now), ti_id)


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
        body: list[bytes] = []

        async def read(*args: Any) -> dict[str, Any]:
            message = await receive(*args)
            if message.get("type") == "http.request":
                body.append(message.get("body", b""))
            return message

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message.get("status", 0))
            await send(message)

        await self.app(scope, read, watch)
        if status and 200 <= status[0] < 300:
            from starlette.concurrency import run_in_threadpool

            try:
                await run_in_threadpool(nudge_run_of, match["ti_id"])
                report = json.loads(b"".join(body) or b"{}") if scope["path"].rstrip("/").endswith("/state") else {}
                if isinstance(report, dict) and report.get("state") in ("failed", "up_for_retry", "up_for_reschedule"):
                    await run_in_threadpool(schedule_follow_ups, match["ti_id"], report)
            except Exception:  # the task's report stands; its run waits for the round robin
                log.exception("Could not nudge the run of task instance %s", match["ti_id"])


def enabled() -> bool:
    """``[order_provider] nudge_runs``."""
    from airflow_order_provider.settings import option_bool

    return option_bool("nudge_runs")
