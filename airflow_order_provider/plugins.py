"""
The provider's Airflow plugin: what Airflow's components must know of it beyond operators.

Every Airflow process loads plugins (scheduler, DAG processor, triggerer, task runners, the API
server), and with ``[core] lazy_load_plugins = False`` it does so while ``import airflow`` runs.
So this module imports nothing of the provider when it is loaded: each entry below is built the
first time Airflow reads it (:class:`_BuiltOnRead`), by which time the provider's modules it needs
are importable. The provider's package imports Airflow before any module of its own
(``airflow_order_provider/__init__.py``): a process that imports the provider first
(``python -m airflow_order_provider.pools``) has loaded the plugins, and the preload below, before
any provider module starts its own import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.plugins_manager import AirflowPlugin


class _BuiltOnRead:
    """A plugin attribute whose value is built by ``build`` on first read, then kept."""

    def __init__(self, build: Callable[[], list[Any]]) -> None:
        self._build = build
        self._value: list[Any] | None = None

    def __get__(self, instance: Any, owner: type | None = None) -> list[Any]:
        if self._value is None:
            self._value = self._build()
        return self._value


def _deadline_references() -> list[Any]:
    # The order's placed-at time (Airflow 3.2+; 3.1 takes no custom reference: empty there).
    from airflow_order_provider.deadlines import DEADLINE_REFERENCES

    return list(DEADLINE_REFERENCES)


def _priority_weight_strategies() -> list[Any]:
    from airflow_order_provider.priority import OrderPriorityStrategy

    return [OrderPriorityStrategy]


def _fastapi_apps() -> list[dict[str, Any]]:
    # Only the API server reads it: the order API (FastAPI, Airflow's API security and ORM code)
    # is imported there and nowhere else.
    from airflow_order_provider.api import URL_PREFIX, fastapi_app

    return [{"app": fastapi_app(), "url_prefix": URL_PREFIX, "name": "Order API"}]


def _root_middlewares() -> list[dict[str, Any]]:
    """
    The API server's root middlewares: the ``/orders`` path, the Required Actions answers kept for
    a retry, and (``[order_provider] nudge_runs``) the nudge of a run whose task reported a new
    state (:mod:`airflow_order_provider.nudge`).
    """
    from airflow_order_provider import nudge
    from airflow_order_provider.api import OrdersPathMiddleware
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
    deadline_references = _BuiltOnRead(_deadline_references)
    priority_weight_strategies = _BuiltOnRead(_priority_weight_strategies)
    fastapi_apps = _BuiltOnRead(_fastapi_apps)
    fastapi_root_middlewares = _BuiltOnRead(_root_middlewares)
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
    """
    from airflow_order_provider.settings import option_bool

    if option_bool("preload"):
        import airflow_order_provider.preload  # noqa: F401


_preload_if_asked()
