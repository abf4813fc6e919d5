"""The order's capacity, one per service from the policy table: its Airflow pool and its Celery worker's autoscale bounds."""

from __future__ import annotations

import math
from typing import Any

from airflow_order_provider.policies.overrides import policy_for
from airflow_order_provider.policies.retry import BUILTIN_POLICIES


def pool_specs() -> dict[str, dict[str, Any]]:
    """
    The pools the order's tasks run in, as ``airflow pools import FILE`` reads them.

    ``python -m airflow_order_provider.pools`` prints this JSON; a deployment imports it once
    (and again after changing ``pool_slots``).
    """
    specs: dict[str, dict[str, Any]] = {}
    for service in BUILTIN_POLICIES:
        policy = policy_for(service)
        specs[policy.pool] = {
            "slots": policy.pool_slots,
            "description": f"Calls to the order {service} service (steps and compensations)",
            "include_deferred": False,
        }
    return specs


def worker_autoscale(service: str, scale: float = 1.0) -> tuple[int, int]:
    """
    ``(max, min)`` processes of the service's Celery worker, as ``airflow celery worker --autoscale``
    takes them: the table's ``max_workers`` and ``min_workers`` times ``scale``, rounded up, at least
    one. ``scale`` sizes the table's numbers (payment 5-50, inventory 10-100, shipping 3-20,
    notification 2-20) to a machine: 0.2 on 2 cores gives payment 1-10.
    """
    if not scale > 0:
        raise ValueError(f"the worker scale must be a positive number, got {scale!r}")
    policy = policy_for(service)
    low = max(1, math.ceil(round(policy.min_workers * scale, 6)))
    high = max(low, math.ceil(round(policy.max_workers * scale, 6)))
    return high, low
