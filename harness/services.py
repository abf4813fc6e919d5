"""The reference order services as the provider reaches them: its four connections, by URI as a user would."""

from __future__ import annotations

from typing import Any

#: The order services, one connection each (``order_<service>_default``).
SERVICES = ("payment", "inventory", "shipping", "notification")


def connection_uri(server: Any) -> str:
    """``http://:KEY@HOST:PORT`` of a running ``order_services.testing.OrderServicesServer`` (the key is the password)."""
    return f"http://:{server.api_key}@{server.host}:{server.port}"


def connections(server: Any) -> dict[str, str]:
    """``{conn_id: URI}`` of the provider's four default connections, all pointed at ``server``."""
    uri = connection_uri(server)
    return {f"order_{service}_default": uri for service in SERVICES}


def connection_env(server: Any) -> dict[str, str]:
    """The same connections as ``AIRFLOW_CONN_ORDER_<SERVICE>_DEFAULT`` environment variables."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": uri for conn_id, uri in connections(server).items()}
