"""
Workarounds of ``dag.test()``'s upstream bugs, each guarded by the Airflow releases it affects
(the flags of :mod:`airflow_order_provider.version_compat`). Installed only where Airflow's core is
loaded in-process (``dag.test()``, ``airflow dags test``): a deployed Airflow is unaffected.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from airflow_order_provider.version_compat import (
    AIRFLOW_V_3_2_PLUS,
    AIRFLOW_V_3_3_PLUS,
)

# -- upstream bug: dag.test() of a DAG with a DeadlineAlert (3.2.0 to 3.3.2 at least) ------------------
#
# When a run succeeds, ``DagRun.update_state`` looks each of the DAG's alerts up by id
# (``DeadlineAlert.get_by_id(alert_id) for alert_id in dag.deadline``, airflow/models/dagrun.py;
# the ``deadline_alert`` table is 3.2) to prune the run's pending deadlines. A deployed DAG's
# ``deadline`` holds the ids of its ``deadline_alert`` rows (the DAG processor writes them), but
# ``dag.test()`` runs the DAG it serialized and deserialized in memory, whose ``deadline`` still
# holds the serialized alerts (dicts): the id lookup binds a dict as a UUID and the successful test
# ends in ``AttributeError: 'dict' object has no attribute 'hex'`` (seen on 3.2.2 and 3.3.2).
# 3.1 keeps the alerts on the DAG (no table, no lookup): nothing to fix there.
#
# The fix answers such a lookup with the alert the dict describes (a transient row, never added to
# the session): ``update_state`` only asks it for its ``reference_class``, then prunes the run's
# deadlines by run id as in a deployment. Ids (str or UUID) are looked up as before, so a deployed
# Airflow is unaffected.

DAG_TEST_DEADLINE_LOOKUP_BROKEN = AIRFLOW_V_3_2_PLUS


def _alert_from_serialized(serialized: dict[str, Any]) -> Any:
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel

    data = serialized.get("__var", serialized)
    return DeadlineAlertModel(
        name=data.get("name"),
        reference=data.get("reference") or {},
        interval=data.get("interval") or {},
        callback_def=data.get("callback") or data.get("callback_def") or {},
    )


def install_dag_test_deadline_fix() -> bool:
    """Let ``DeadlineAlert.get_by_id`` take the serialized alert ``dag.test()`` passes; True if installed now."""
    if not DAG_TEST_DEADLINE_LOOKUP_BROKEN:
        return False
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel

    current = DeadlineAlertModel.__dict__["get_by_id"].__func__
    if getattr(current, "_order_provider_fix", False):
        return False

    def get_by_id(cls, deadline_alert_id, *args: Any, **kwargs: Any):
        if isinstance(deadline_alert_id, dict):
            return _alert_from_serialized(deadline_alert_id)
        return current(cls, deadline_alert_id, *args, **kwargs)

    get_by_id._order_provider_fix = True  # type: ignore[attr-defined]
    get_by_id.__doc__ = current.__doc__
    DeadlineAlertModel.get_by_id = classmethod(get_by_id)  # type: ignore[method-assign]
    return True


# -- upstream bug: dag.test() of Airflow 3.1 and 3.2 loses its in-process execution API's services ------
#
# ``dag.test()`` (and ``airflow dags test``) runs each task against an in-process execution API
# (``InProcessExecutionAPI.transport``, airflow/api_fastapi/execution_api/app.py). 3.1 and 3.2 enter
# the app's lifespan (which puts the app's services in ``app.state.svcs_registry``) on a2wsgi's loop
# without waiting for it, and keep the lifespan's exit stack on the ``InProcessExecutionAPI`` object,
# which the supervisor drops as soon as it has the transport (``_api_client``). When that object is
# collected, the lifespan is unwound, and svcs 26.2's lifespan then removes ``svcs_registry``: every
# task fails before it starts with ``'State' object has no attribute 'svcs_registry'`` (seen with
# 3.2.2 and svcs 26.2.0, on a trivial DAG too). Airflow 3.3 waits for the startup and ties the
# lifespan to the transport ("Stop the loop + thread and unwind the lifespan when the *transport* is
# garbage collected"), and builds the app once per process (``in_process_api_server`` is an
# ``lru_cache(maxsize=1)``), where 3.1 and 3.2 build the whole app again for every task (seconds
# each on 2 cores: a dag.test() order took minutes and ran into its workflow timeout). The fix
# below does the same for 3.1 and 3.2; it changes nothing in a deployment (no in-process execution
# API there).

DAG_TEST_LIFESPAN_RACE = not AIRFLOW_V_3_3_PLUS


class _StartedInProcessAPI:
    """3.1's and 3.2's ``InProcessExecutionAPI`` whose transport waits for the app's startup and keeps it, as 3.3's."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self._transport: Any = None

    @property
    def app(self) -> Any:
        return self._api.app

    @property
    def transport(self) -> Any:
        if self._transport is None:
            from contextlib import AsyncExitStack

            import httpx
            from a2wsgi import ASGIMiddleware

            middleware = ASGIMiddleware(self.app)

            async def start_lifespan(cm: AsyncExitStack, app: Any) -> None:
                await cm.enter_async_context(app.router.lifespan_context(app))

            cm = AsyncExitStack()
            asyncio.run_coroutine_threadsafe(start_lifespan(cm, self.app), middleware.loop).result()
            self._transport = httpx.WSGITransport(app=middleware)
            # The lifespan lives as long as the transport (the client keeps it), not this object,
            # which the supervisor drops at once.
            self._transport._order_provider_lifespan = cm
        return self._transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


def install_dag_test_lifespan_fix() -> bool:
    """
    Give ``dag.test()``'s tasks an in-process execution API that has started and stays up, one per
    process (3.1, 3.2): the supervisor's ``in_process_api_server`` (which ``_api_client`` calls for
    each task) wrapped and cached, as 3.3's is. True if installed now.
    """
    if not DAG_TEST_LIFESPAN_RACE:
        return False
    from airflow.sdk.execution_time import supervisor

    current = supervisor.in_process_api_server
    if getattr(current, "_order_provider_fix", False):
        return False

    @functools.lru_cache(maxsize=1)
    def in_process_api_server() -> Any:
        return _StartedInProcessAPI(current())

    in_process_api_server._order_provider_fix = True  # type: ignore[attr-defined]
    supervisor.in_process_api_server = in_process_api_server
    return True


# -- upstream bug: dag.test() of Airflow 3.1 and 3.2 calls failure callbacks without the exception -------
#
# A deployment's task runner sets ``context["exception"]`` before ``finalize`` runs the task's
# failure callbacks (``task_runner.main``, every release). ``dag.test()``'s in-process supervisor
# (``InProcessTestSupervisor.start``) calls ``run`` and ``finalize`` without it in 3.1 and 3.2 (3.3
# sets it), so a callback that tells a business refusal from an incident by its exception (the
# provider's alerts: an invalid order is no incident) sees none, and alerts. The fix sets it as the
# task runner does; in a deployment it is already set and nothing changes.

DAG_TEST_CALLBACK_WITHOUT_EXCEPTION = not AIRFLOW_V_3_3_PLUS


def install_dag_test_callback_exception_fix() -> bool:
    """``task_runner.finalize`` puts the task's error in the context first, as ``task_runner.main`` does."""
    if not DAG_TEST_CALLBACK_WITHOUT_EXCEPTION:
        return False
    from airflow.sdk.execution_time import task_runner

    current = task_runner.finalize
    if getattr(current, "_order_provider_fix", False):
        return False

    @functools.wraps(current)
    def finalize(ti: Any, state: Any, context: Any, log: Any, error: BaseException | None = None, *args: Any,
                 **kwargs: Any) -> Any:
        if error is not None and context.get("exception") is None:
            context["exception"] = error
        return current(ti, state, context, log, error, *args, **kwargs)

    finalize._order_provider_fix = True  # type: ignore[attr-defined]
    task_runner.finalize = finalize
    return True


def install_dag_test_fixes() -> None:
    """The workarounds of ``dag.test()``'s upstream bugs that apply to this release."""
    install_dag_test_deadline_fix()
    install_dag_test_lifespan_fix()
    install_dag_test_callback_exception_fix()
