"""
The retry policy table: how each service's steps are tried (attempts, back-off, step timeout, the
errors never retried, what happens when retries run out), its queue and pool, and each service's
compensation row (refund, release, cancel shipment).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
from airflow_order_provider.settings import time_scale
from airflow_order_provider.version_compat import (
    HAS_RETRY_POLICY,
    ExceptionRetryPolicy,
    RetryAction,
    RetryRule,
    exponential_backoff,
)

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
    #: Celery queue of the service's tasks (a worker pool per service); empty: the
    #: service's name. Ignored by the Local executor.
    queue: str = ""
    #: Airflow pool of the service's tasks; empty: ``order_<service>``. Create the pools with
    #: ``airflow pools import`` from :func:`pool_specs` (``python -m airflow_order_provider.pools``).
    pool: str = ""
    #: Slots of that pool: how many of the service's calls run at once.
    pool_slots: int = 1
    #: Processes of the service's Celery worker: Celery's autoscaler keeps at least ``min_workers``
    #: and grows to ``max_workers`` while the queue holds work (:func:`~airflow_order_provider.policies.pools.worker_autoscale`,
    #: scaled to the machine; docker-compose.yaml's ``--autoscale``).
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

#: Retries of a wait for a person (the approval): only for a try failed from outside, never for an
#: answer. Airflow 3.3.2's scheduler can fail a task resumed by a Required Actions answer that came
#: within a moment of the request ("finished with state success, but the task instance's state
#: attribute is queued"); the answer stays recorded on the task instance, and the retry acts on it
#: instead of asking again. Rejections and cancels are never retried (AirflowFailException).
REQUIRED_ACTION_RETRY_DEFAULTS: dict[str, Any] = {"retries": 2, "retry_delay": timedelta(seconds=1)}

#: Retries of the order's own tasks, which call no service that changes anything (the validation,
#: the value check, the compensation planner, the records of the outcome): for a try failed from
#: outside (its worker died) or by an unexpected error (an API server that did not answer). Running
#: one again is safe; without a retry, a worker killed under one failed a healthy order. Their
#: refusals (a bad order, a timeout, a cancel) are AirflowFailException and never retried.
ORDER_TASK_RETRY_DEFAULTS: dict[str, Any] = {"retries": 2, "retry_delay": timedelta(seconds=1)}
