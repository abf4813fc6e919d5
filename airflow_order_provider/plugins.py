"""The provider's Airflow plugin: what Airflow's components must know of it beyond operators."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_order_provider.deadlines import OrderPlacedAt


class OrderProviderPlugin(AirflowPlugin):
    """Registers the order's deadline reference (see :mod:`airflow_order_provider.deadlines`)."""

    name = "order_provider"
    deadline_references = [OrderPlacedAt]
