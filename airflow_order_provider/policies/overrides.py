"""
A deployment's own rows of the policy table, without touching code: ``[order_provider]
policy_overrides``, a JSON object keyed by service (intervals and timeouts in seconds), and a
compensation row under ``"<service>.compensation"``::

    AIRFLOW__ORDER_PROVIDER__POLICY_OVERRIDES='{"payment": {"attempts": 5, "on_retries_exhausted": "pause"}}'
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from datetime import timedelta
from typing import Any

from airflow_order_provider.policies.retry import (
    BUILTIN_COMPENSATION_POLICIES,
    BUILTIN_POLICIES,
    ServicePolicy,
)
from airflow_order_provider.settings import CONFIG_SECTION, option

_DURATIONS = {"first_interval", "max_interval", "step_timeout", "decision_timeout", "horizon", "wait_interval",
              "max_wait_interval"}
_OVERRIDABLE = {f.name for f in fields(ServicePolicy)} - {"service", "never_retried"}
COMPENSATION_SUFFIX = ".compensation"


def _overrides() -> dict[str, dict[str, Any]]:
    raw = option("policy_overrides")
    if not raw.strip():
        return {}
    try:
        overrides = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"[{CONFIG_SECTION}] policy_overrides is not valid JSON: {exc}") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"[{CONFIG_SECTION}] policy_overrides must be a JSON object keyed by service")
    return overrides


def _apply(policy: ServicePolicy, key: str, changes: dict[str, Any]) -> ServicePolicy:
    unknown = set(changes) - _OVERRIDABLE
    if unknown:
        raise ValueError(
            f"[{CONFIG_SECTION}] policy_overrides.{key}: unknown setting(s) {sorted(unknown)};"
            f" use {sorted(_OVERRIDABLE)}"
        )
    values = {
        name: timedelta(seconds=float(value)) if name in _DURATIONS else value
        for name, value in changes.items()
    }
    return replace(policy, **values) if values else policy


def with_policy_defaults(kwargs: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """
    An operator's keyword arguments with the policy's ``defaults`` filled in where neither the
    arguments nor their ``default_args`` give a value (default_args reach an operator's
    ``__init__`` unapplied: both win over the policy table).
    """
    given = {**(kwargs.get("default_args") or {}), **kwargs}
    return {**{name: value for name, value in defaults.items() if name not in given}, **kwargs}


def policy_for(service: str, *, compensation: bool = False) -> ServicePolicy:
    """
    The service's row of the table, with this deployment's ``policy_overrides`` applied.

    :param compensation: the row of the service's compensation (refund, release, cancel) instead
        of its forward step. The service's own overrides of ``queue``, ``pool`` and ``pool_slots``
        apply to both: a service has one queue and one pool.
    """
    overrides = _overrides()
    own = overrides.get(service) or {}
    if not compensation:
        return _apply(BUILTIN_POLICIES[service], service, own)
    key = service + COMPENSATION_SUFFIX
    shared = {name: own[name] for name in ("queue", "pool", "pool_slots") if name in own}
    return _apply(BUILTIN_COMPENSATION_POLICIES[service], key, {**shared, **(overrides.get(key) or {})})


def compensation_policy(service: str) -> ServicePolicy:
    """The service's compensation row, with this deployment's overrides."""
    return policy_for(service, compensation=True)
