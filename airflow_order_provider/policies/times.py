"""The order-level time limits (workflow timeout, ship deadline, approval and dispatch waits)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from airflow_order_provider.policies.overrides import compensation_policy, policy_for
from airflow_order_provider.policies.retry import BUILTIN_COMPENSATION_POLICIES, BUILTIN_POLICIES
from airflow_order_provider.settings import option, time_scale


@dataclass(frozen=True)
class OrderTimes:
    """
    The order-level time limits, besides each service's step timeout.

    * ``workflow_timeout``: how long the order's own processing may take, the waits for a person
      (approval, a paused step) and for the carrier's pickup left out: they have their own
      timeouts below. Checked at every step; past it, the step fails with ``WorkflowTimeoutError``
      and the completed steps are compensated in the same run. An order may ask for less
      (``workflow_timeout_seconds`` in its conf).
    * ``ship_deadline``: the business deadline, "ships within 24 hours of payment", as a
      ``DeadlineAlert`` on the run; operations are alerted when an order misses it.
    * ``expedite_within``: with less than this left before the ship deadline, reservation asks for
      priority and shipping goes express.
    * ``approval_timeout``: how long a high-value order waits for approval; no answer rejects it.
    * ``dispatch_timeout`` / ``dispatch_poll_interval``: the wait for the carrier's pickup.
    * ``run_timeout_margin``: Airflow's ``dagrun_timeout`` is the sum of all the above plus this
      margin, a backstop that should never fire (when it does, Airflow skips the run's remaining
      tasks and operations are alerted to settle the order).
    """

    workflow_timeout: timedelta = timedelta(hours=1)
    ship_deadline: timedelta = timedelta(hours=24)
    expedite_within: timedelta = timedelta(hours=1)
    approval_timeout: timedelta = timedelta(hours=24)
    approval_threshold: int = 100_000
    dispatch_timeout: timedelta = timedelta(hours=24)
    dispatch_poll_interval: timedelta = timedelta(seconds=60)
    run_timeout_margin: timedelta = timedelta(hours=1)

    def scaled(self, name: str, scale: float | None = None) -> timedelta:
        value = getattr(self, name)
        return value * (time_scale() if scale is None else scale)

    def run_timeout(self, scale: float | None = None) -> timedelta:
        """Airflow's ``dagrun_timeout``: every wait of an order at its longest, plus the margin."""
        decisions = sum((policy_for(name).decision_timeout for name in BUILTIN_POLICIES), timedelta())
        # Compensations wait one after another only where one waits for another (refund after the
        # shipment's cancel): two horizons at most, plus a wait past each.
        undo = sorted(
            (p.horizon + p.max_wait_interval for p in map(compensation_policy, BUILTIN_COMPENSATION_POLICIES)),
            reverse=True,
        )[:2]
        total = (
            self.workflow_timeout
            + self.approval_timeout
            + self.dispatch_timeout
            + decisions
            + sum(undo, timedelta())
            + self.run_timeout_margin
        )
        return total * (time_scale() if scale is None else scale)


#: The limits a deployment sets in ``[order_provider]`` (seconds), under the same names.
_TIME_OPTIONS = ("workflow_timeout", "ship_deadline", "approval_timeout", "dispatch_timeout")


def order_times() -> OrderTimes:
    """The order-level limits with this deployment's ``[order_provider]`` settings (seconds)."""
    changes: dict[str, Any] = {}
    for name in _TIME_OPTIONS:
        raw = option(name)
        if raw.strip():
            changes[name] = timedelta(seconds=float(raw))
    threshold = option("approval_threshold")
    if threshold.strip():
        changes["approval_threshold"] = int(threshold)
    return replace(OrderTimes(), **changes)
