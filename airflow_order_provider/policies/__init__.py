"""
Every retry policy and timeout of the order process, in one place.

The policy table (:mod:`.retry`): operators take their defaults from it
(:meth:`ServicePolicy.operator_defaults`), and any operator argument given explicitly wins.
``[order_provider] time_scale`` multiplies every interval and timeout, so that tests and demos run
the real policies faster (``AIRFLOW__ORDER_PROVIDER__TIME_SCALE=0.01``).

"Attempts" counts every try, so Airflow's ``retries`` is ``attempts - 1``.

``on_retries_exhausted`` says what happens when a step fails for good:

* ``compensate`` -- undo the steps that completed, in reverse order, and cancel the order;
* ``pause`` -- ask a person in the UI (Required Actions): retry the step, compensate, or abandon;
  with no answer within ``decision_timeout`` it compensates;
* ``fail`` -- no compensation; the run fails and operations are alerted.

Each service also has a compensation row (refund, release, cancel shipment; :func:`_patient`):
a few quick tries, then tries deferred to the triggerer (no worker, no pool slot) with a capped
back-off for the service's ``horizon`` (hours), before the undo asks for a person.

A deployment changes any row without touching code, through ``[order_provider] policy_overrides``,
a JSON object keyed by service; intervals and timeouts are in seconds::

    AIRFLOW__ORDER_PROVIDER__POLICY_OVERRIDES='{"payment": {"attempts": 5, "on_retries_exhausted": "pause"}}'

and a compensation row under ``"<service>.compensation"`` (``horizon``, ``wait_interval``,
``max_wait_interval`` besides the others), as tests do to wait seconds instead of hours.

The parts: :mod:`.retry` (the table), :mod:`.overrides` (a deployment's rows), :mod:`.pools`
(the pools), :mod:`.times` (the order's time limits); the settings are read by
:mod:`airflow_order_provider.settings`.
"""

from __future__ import annotations

from airflow_order_provider.policies.overrides import compensation_policy, policy_for, with_policy_defaults
from airflow_order_provider.policies.pools import pool_specs, worker_autoscale
from airflow_order_provider.policies.retry import (
    ALWAYS_FATAL,
    BUILTIN_COMPENSATION_POLICIES,
    BUILTIN_POLICIES,
    COMPENSATION_HORIZONS,
    EXHAUSTED_MODES,
    INVENTORY,
    MIN_STEP_TIMEOUT,
    NOTIFICATION,
    ORDER_TASK_RETRY_DEFAULTS,
    PAYMENT,
    REQUIRED_ACTION_RETRY_DEFAULTS,
    SHIPPING,
    ExhaustedMode,
    ServicePolicy,
)
from airflow_order_provider.policies.times import OrderTimes, order_times
from airflow_order_provider.settings import CONFIG_SECTION, time_scale

__all__ = [
    "ALWAYS_FATAL",
    "BUILTIN_COMPENSATION_POLICIES",
    "BUILTIN_POLICIES",
    "COMPENSATION_HORIZONS",
    "CONFIG_SECTION",
    "EXHAUSTED_MODES",
    "INVENTORY",
    "MIN_STEP_TIMEOUT",
    "NOTIFICATION",
    "ORDER_TASK_RETRY_DEFAULTS",
    "PAYMENT",
    "REQUIRED_ACTION_RETRY_DEFAULTS",
    "SHIPPING",
    "ExhaustedMode",
    "OrderTimes",
    "ServicePolicy",
    "compensation_policy",
    "order_times",
    "policy_for",
    "pool_specs",
    "time_scale",
    "with_policy_defaults",
    "worker_autoscale",
]
