"""
Every retry policy and timeout of the order process, in one place.

The table below is the seed's policy table; operators take their defaults from it
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
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any, Literal

from airflow_order_provider.exceptions import (
    AddressUndeliverableError,
    CardExpiredError,
    FraudDetectedError,
    IdempotencyKeyReusedError,
    InsufficientFundsError,
    ItemDiscontinuedError,
    PaymentDeclinedError,
    RegionNotServicedError,
    ServiceAuthenticationError,
    ServiceValidationError,
)
from airflow_order_provider.version_compat import (
    HAS_RETRY_POLICY,
    ExceptionRetryPolicy,
    RetryAction,
    RetryRule,
    conf,
    exponential_backoff,
)

CONFIG_SECTION = "order_provider"

#: A step timeout is never scaled below this: it guards against hung calls, and a scaled-down
#: demo must still leave room for a worker to start a task and make one HTTP call.
MIN_STEP_TIMEOUT = timedelta(seconds=5)

#: Errors that no retry can fix, whatever the service: a wrong API key, a request the service
#: cannot parse, an idempotency key reused for another request.
ALWAYS_FATAL: tuple[type[BaseException], ...] = (
    ServiceAuthenticationError,
    ServiceValidationError,
    IdempotencyKeyReusedError,
)


ExhaustedMode = Literal["compensate", "pause", "fail"]
EXHAUSTED_MODES: tuple[str, ...] = ("compensate", "pause", "fail")


def time_scale() -> float:
    """Return ``[order_provider] time_scale`` (default 1.0); it must be a positive number."""
    value = conf.getfloat(CONFIG_SECTION, "time_scale", fallback=1.0)
    if value <= 0:
        raise ValueError(f"[{CONFIG_SECTION}] time_scale must be positive, got {value}")
    return value


@dataclass(frozen=True)
class ServicePolicy:
    """How the order process treats one service: tries, backoff, timeout, fatal errors."""

    service: str
    attempts: int
    first_interval: timedelta
    backoff: float
    max_interval: timedelta
    step_timeout: timedelta
    never_retried: tuple[type[BaseException], ...] = ()
    on_retries_exhausted: ExhaustedMode = "compensate"
    #: How long a paused step waits for a person before it compensates.
    decision_timeout: timedelta = timedelta(hours=24)
    #: Celery queue of the service's tasks (the seed's worker pool per activity type); empty: the
    #: service's name. Ignored by the Local executor.
    queue: str = ""
    #: Airflow pool of the service's tasks; empty: ``order_<service>``. Create the pools with
    #: ``airflow pools import`` from :func:`pool_specs` (``python -m airflow_order_provider.pools``).
    pool: str = ""
    #: Slots of that pool: how many of the service's calls run at once (the seed's minimum
    #: instances of the service's workers).
    pool_slots: int = 1
    #: Processes of the service's Celery worker (the seed's worker pool per activity type): Celery's
    #: autoscaler keeps at least ``min_workers`` and grows to ``max_workers`` while the queue holds
    #: work (:func:`worker_autoscale`, scaled to the machine; docker-compose.yaml's ``--autoscale``).
    min_workers: int = 1
    max_workers: int = 1
    #: Compensation rows only: how long an undo keeps trying after its quick tries, waiting deferred
    #: between tries (no worker slot, no pool slot), before it is a manual item. Zero: no waiting.
    horizon: timedelta = timedelta(0)
    #: The first of those waits; each next one grows by ``backoff``, up to ``max_wait_interval``.
    wait_interval: timedelta = timedelta(minutes=1)
    max_wait_interval: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if not self.queue:
            object.__setattr__(self, "queue", self.service)
        if not self.pool:
            object.__setattr__(self, "pool", f"order_{self.service}")
        if self.pool_slots < 1:
            raise ValueError(f"{self.service}: pool_slots must be at least 1, got {self.pool_slots}")
        if not 1 <= self.min_workers <= self.max_workers:
            raise ValueError(
                f"{self.service}: need 1 <= min_workers <= max_workers, got {self.min_workers} and {self.max_workers}"
            )
        if self.attempts < 1:
            raise ValueError(f"{self.service}: attempts must be at least 1, got {self.attempts}")
        if self.on_retries_exhausted not in EXHAUSTED_MODES:
            raise ValueError(
                f"{self.service}: on_retries_exhausted must be one of {', '.join(EXHAUSTED_MODES)},"
                f" got {self.on_retries_exhausted!r}"
            )

    def is_never_retried(self, error: BaseException) -> bool:
        return isinstance(error, self.never_retried + ALWAYS_FATAL)

    def scaled(self, interval: timedelta, scale: float | None = None) -> timedelta:
        return interval * (time_scale() if scale is None else scale)

    def retry_policy(self) -> ExceptionRetryPolicy:
        """
        Airflow retry policy that fails at once on the errors no retry can fix (Airflow 3.3+;
        before, the operators fail such errors at once themselves:
        :func:`airflow_order_provider.version_compat.fail_at_once_on`).
        """
        if not HAS_RETRY_POLICY:
            raise RuntimeError("retry policies need Airflow 3.3+")
        rules = []
        if self.never_retried:
            rules.append(
                RetryRule(
                    exception=list(self.never_retried),
                    action=RetryAction.FAIL,
                    reason=f"the {self.service} service refused the request; no retry can fix it",
                )
            )
        rules.append(
            RetryRule(
                exception=list(ALWAYS_FATAL),
                action=RetryAction.FAIL,
                reason="the request or its credentials are wrong; no retry can fix it",
            )
        )
        return ExceptionRetryPolicy(rules=rules)

    def retry_defaults(self, scale: float | None = None) -> dict[str, Any]:
        """The operator keyword arguments of this policy's retries, scaled by ``time_scale``."""
        scale = time_scale() if scale is None else scale
        return {
            "retries": self.attempts - 1,
            "retry_delay": self.first_interval * scale,
            "retry_exponential_backoff": exponential_backoff(self.backoff),
            "max_retry_delay": self.max_interval * scale,
            **({"retry_policy": self.retry_policy()} if HAS_RETRY_POLICY else {}),
        }

    def operator_defaults(self, scale: float | None = None) -> dict[str, Any]:
        """Operator keyword arguments that implement this policy, scaled by ``time_scale``."""
        scale = time_scale() if scale is None else scale
        return {
            **self.retry_defaults(scale),
            "execution_timeout": max(self.step_timeout * scale, MIN_STEP_TIMEOUT),
            "queue": self.queue,
            "pool": self.pool,
        }


PAYMENT = ServicePolicy(
    service="payment",
    min_workers=5,
    max_workers=50,
    pool_slots=5,
    attempts=3,
    first_interval=timedelta(seconds=1),
    backoff=2.0,
    max_interval=timedelta(seconds=10),
    step_timeout=timedelta(seconds=30),
    never_retried=(PaymentDeclinedError, FraudDetectedError, InsufficientFundsError, CardExpiredError),
)
INVENTORY = ServicePolicy(
    service="inventory",
    min_workers=10,
    max_workers=100,
    pool_slots=10,
    attempts=5,
    first_interval=timedelta(milliseconds=100),
    backoff=1.5,
    max_interval=timedelta(seconds=2),
    step_timeout=timedelta(seconds=30),
    never_retried=(ItemDiscontinuedError, RegionNotServicedError),
)
SHIPPING = ServicePolicy(
    service="shipping",
    min_workers=3,
    max_workers=20,
    pool_slots=3,
    attempts=3,
    first_interval=timedelta(seconds=5),
    backoff=2.0,
    max_interval=timedelta(seconds=30),
    step_timeout=timedelta(seconds=60),
    never_retried=(AddressUndeliverableError,),
)
NOTIFICATION = ServicePolicy(
    service="notification",
    attempts=10,
    first_interval=timedelta(seconds=10),
    backoff=2.0,
    max_interval=timedelta(minutes=5),
    step_timeout=timedelta(seconds=30),
    # A confirmation that never goes out does not undo a shipped order: alert, never compensate.
    on_retries_exhausted="fail",
    pool_slots=2,
    min_workers=2,
    max_workers=20,
)

#: The table as written in code, before any deployment override.
BUILTIN_POLICIES: dict[str, ServicePolicy] = {
    p.service: p for p in (PAYMENT, INVENTORY, SHIPPING, NOTIFICATION)
}


#: How long each service's undo keeps trying before it is a manual item (unscaled). A refund keeps
#: trying for three days: the customer's money is at stake and nothing else gives it back. A stock
#: hold expires by itself after 24 h at the inventory service, so its release has no reason to try
#: longer. A shipment's cancel is worth trying for a day: past the carrier's pickup it rolls forward.
COMPENSATION_HORIZONS: dict[str, timedelta] = {
    "payment": timedelta(hours=72),
    "inventory": timedelta(hours=24),
    "shipping": timedelta(hours=24),
}


def _patient(policy: ServicePolicy) -> ServicePolicy:
    """
    The compensation row of a service: an undo is far more patient than its forward step.

    Temporal retries a compensation until it succeeds. Here an undo first tries 5 times quickly
    (Airflow retries, waits up to 30 s, holding a worker only while it calls), then keeps trying
    deferred to the triggerer, holding no worker and no pool slot: waits from 1 minute growing as
    the service's backoff up to 30 minutes, for the service's horizon (hours,
    :data:`COMPENSATION_HORIZONS`). Only then does it fail and ask for manual intervention. An undo
    that can never succeed (the parcel is already with the carrier) does not wait: the compensation
    operators raise ``CompensationImpossibleError`` (and the shipment's rolls the order forward).
    """
    return replace(
        policy,
        attempts=5,
        first_interval=max(policy.first_interval, timedelta(seconds=1)),
        max_interval=timedelta(seconds=30),
        never_retried=(),
        horizon=COMPENSATION_HORIZONS[policy.service],
    )


#: The compensation rows (refund, release, cancel shipment), one per service, before overrides.
#: A deployment overrides them under ``"<service>.compensation"`` in ``policy_overrides``.
BUILTIN_COMPENSATION_POLICIES: dict[str, ServicePolicy] = {
    name: _patient(policy) for name, policy in BUILTIN_POLICIES.items() if name != "notification"
}

_DURATIONS = {"first_interval", "max_interval", "step_timeout", "decision_timeout", "horizon", "wait_interval",
              "max_wait_interval"}
_OVERRIDABLE = {f.name for f in fields(ServicePolicy)} - {"service", "never_retried"}
COMPENSATION_SUFFIX = ".compensation"


def _overrides() -> dict[str, dict[str, Any]]:
    raw = conf.get(CONFIG_SECTION, "policy_overrides", fallback="") or ""
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
    one. ``scale`` sizes the seed's numbers (payment 5-50, inventory 10-100, shipping 3-20,
    notification 2-20) to a machine: 0.2 on 2 cores gives payment 1-10.
    """
    if not scale > 0:
        raise ValueError(f"the worker scale must be a positive number, got {scale!r}")
    policy = policy_for(service)
    low = max(1, math.ceil(round(policy.min_workers * scale, 6)))
    high = max(low, math.ceil(round(policy.max_workers * scale, 6)))
    return high, low


#: Retries of a wait for a person (the approval): only for a try failed from outside, never for an
#: answer. Airflow 3.3.2's scheduler can fail a task resumed by a Required Actions answer that came
#: within a moment of the request ("finished with state success, but the task instance's state
#: attribute is queued"); the answer stays recorded on the task instance, and the retry acts on it
#: instead of asking again. Rejections and cancels are never retried (AirflowFailException).
REQUIRED_ACTION_RETRY_DEFAULTS: dict[str, Any] = {"retries": 2, "retry_delay": timedelta(seconds=1)}

#: Request timeout of one HTTP call, unless the connection's ``timeout`` field says otherwise.
DEFAULT_REQUEST_TIMEOUT = 10.0


# -- the order's clocks ---------------------------------------------------------------------------


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


_TIME_OPTIONS = {
    "workflow_timeout": "workflow_timeout",
    "ship_deadline": "ship_deadline",
    "approval_timeout": "approval_timeout",
    "dispatch_timeout": "dispatch_timeout",
}


def order_times() -> OrderTimes:
    """The order-level limits with this deployment's ``[order_provider]`` settings (seconds)."""
    changes: dict[str, Any] = {}
    for option, name in _TIME_OPTIONS.items():
        raw = conf.get(CONFIG_SECTION, option, fallback="") or ""
        if raw.strip():
            changes[name] = timedelta(seconds=float(raw))
    threshold = conf.get(CONFIG_SECTION, "approval_threshold", fallback="") or ""
    if threshold.strip():
        changes["approval_threshold"] = int(threshold)
    return replace(OrderTimes(), **changes)
