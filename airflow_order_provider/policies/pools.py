"""The Airflow pools the order's tasks run in, one per service, from the policy table."""

from __future__ import annotations

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
