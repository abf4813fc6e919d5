"""The provider's Airflow plugin: what Airflow's components must know of it beyond operators."""

from __future__ import annotations

import sys
from typing import Any

#: The provider's modules in the middle of their import when Airflow loaded this plugin (as importlib
#: marks them: ``__spec__._initializing``): a process that imported the provider first
#: (``python -m airflow_order_provider.pools``: its policies import Airflow, which loads the plugins;
#: the package itself does, to check Airflow's version).
_IMPORTING_PROVIDER = sorted(
    name for name, module in list(sys.modules.items())
    if (name == "airflow_order_provider" or name.startswith("airflow_order_provider.")) and name != __name__
    and getattr(getattr(module, "__spec__", None), "_initializing", False)
)

from airflow.plugins_manager import AirflowPlugin  # noqa: E402 (after the snapshot above)

from airflow_order_provider.api import URL_PREFIX, OrdersPathMiddleware  # noqa: E402 (after the snapshot above)
from airflow_order_provider.deadlines import DEADLINE_REFERENCES  # noqa: E402 (after the snapshot above)
from airflow_order_provider.priority import OrderPriorityStrategy  # noqa: E402 (after the snapshot above)


class _OrderApiApps:
    """
    ``fastapi_apps`` of the plugin, built when the API server first reads it.

    Every Airflow process loads plugins (scheduler, DAG processor, triggerer, task runners), but
    only the API server reads ``fastapi_apps``: the order API (FastAPI, Airflow's API security and
    ORM code) is imported there and nowhere else.
    """

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None

    def __get__(self, instance: Any, owner: type | None = None) -> list[dict[str, Any]]:
        if self._apps is None:
            from airflow_order_provider.api import fastapi_app

            self._apps = [{"app": fastapi_app(), "url_prefix": URL_PREFIX, "name": "Order API"}]
        return self._apps


class _RootMiddlewares:
    """
    ``fastapi_root_middlewares`` of the plugin, read by the API server once: the ``/orders`` path,
    the Required Actions answers kept for a retry, and (``[order_provider] nudge_runs``) the
    nudge of a run whose task reported a new state (:mod:`airflow_order_provider.nudge`).
    """

    def __get__(self, instance: Any, owner: type | None = None) -> list[dict[str, Any]]:
        from airflow_order_provider import nudge
        from airflow_order_provider.required_actions import RecordRequiredActionAnswers
        from airflow_order_provider.version_compat import HAS_TASK_STATE_STORE

        middlewares = [
            # Lets ``POST /orders`` and ``GET /orders?...`` (no trailing slash) reach the mounted app.
            {"middleware": OrdersPathMiddleware, "args": [], "kwargs": {}, "name": "Order API path"},
        ]
        if HAS_TASK_STATE_STORE:  # the answers are kept in the task's state store (Airflow 3.3)
            middlewares.append(
                {"middleware": RecordRequiredActionAnswers, "args": [], "kwargs": {}, "name": "Required Actions answers"}
            )
        if nudge.enabled():
            middlewares.append(
                {"middleware": nudge.NudgeRunsMiddleware, "args": [], "kwargs": {}, "name": "Nudge runs"}
            )
        return middlewares


class OrderProviderPlugin(AirflowPlugin):
    """
    Registers the order's deadline reference (see :mod:`airflow_order_provider.deadlines`), its
    priority weight strategy (premium and expedited orders first, :mod:`airflow_order_provider.priority`), the
    order API on Airflow's API server under ``/orders`` (see :mod:`airflow_order_provider.api`),
    and the **Orders** page in the UI's navigation.
    """

    name = "order_provider"
    # The order's placed-at time (Airflow 3.2+; 3.1 takes no custom reference: empty there).
    deadline_references = list(DEADLINE_REFERENCES)
    priority_weight_strategies = [OrderPriorityStrategy]
    fastapi_apps = _OrderApiApps()
    fastapi_root_middlewares = _RootMiddlewares()
    # A nav entry: the UI shows the page (served by the order API) in a frame at /plugin/orders.
    # The href is relative, so that it resolves under the UI's base URL.
    external_views = [
        {
            "name": "Orders",
            "href": "orders/ui",
            "url_route": "orders",
            "destination": "nav",
        }
    ]


def _preload_if_asked() -> None:
    """
    ``[order_provider] preload``: import the whole provider (:mod:`airflow_order_provider.preload`)
    with the plugin. With ``[core] lazy_load_plugins = False`` Airflow loads plugins when each of
    its processes starts, before the scheduler forks its LocalExecutor workers (whose task processes
    are forks of them) and before the DAG processor forks the process that parses a file: every
    task and every parse then finds the provider imported instead of importing it again.

    Not in a process that was already importing the provider when Airflow loaded the plugin: the
    preload would import the provider's modules in the middle of their own import (a circular
    import, and the plugin would fail); that process imports what it uses anyway.
    """
    from airflow_order_provider.settings import option_bool

    if option_bool("preload") and not _IMPORTING_PROVIDER:
        import airflow_order_provider.preload  # noqa: F401


_preload_if_asked()
