"""
The order API and the Orders page, served by Airflow's own API server.

The provider's plugin (:mod:`airflow_order_provider.plugins`) mounts the FastAPI app of
:mod:`airflow_order_provider.api.app` under ``/orders``; it is built on first use, in the API
server only, so that every other Airflow process loading the plugin (scheduler, workers,
triggerer, DAG processor) imports none of it.

This package's ``__init__`` stays import-light on purpose: the plugin's root middlewares take
:class:`OrdersPathMiddleware` from it without importing the app.
"""

from __future__ import annotations

from typing import Any

#: Where the plugin mounts the order API on the API server.
URL_PREFIX = "/orders"


class OrdersPathMiddleware:
    """
    Route ``/orders`` (no trailing slash) to the order API instead of Airflow's UI.

    Starlette mounts an app under ``/orders/...`` only, and the API server answers every other GET
    with its single-page UI (a POST with 405): without this, ``POST /orders`` and
    ``GET /orders?status=...`` would never reach the order API. A plain ASGI middleware that
    rewrites exactly that path (under the deployment's root path, if any) to ``/orders/``.
    """

    def __init__(self, app: Any, prefix: str = URL_PREFIX) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            path = scope.get("path", "")
            root = scope.get("root_path", "") or ""
            route_path = path[len(root):] if root and path.startswith(root) else path
            if route_path == self.prefix:
                scope = dict(scope)
                scope["path"] = path + "/"
                raw = scope.get("raw_path")
                if isinstance(raw, bytes | bytearray) and not raw.endswith(b"/"):
                    scope["raw_path"] = bytes(raw) + b"/"
        await self.app(scope, receive, send)


def fastapi_app() -> Any:
    """The order API's FastAPI app (built once, on first call)."""
    from airflow_order_provider.api.app import get_app

    return get_app()
