"""
Every retry policy and timeout of the order process, in one place.

The table below is the seed's policy table; operators take their defaults from it
(:meth:`ServicePolicy.operator_defaults`), and any operator argument given explicitly wins.
``[order_provider] time_scale`` multiplies every interval and timeout, so that tests and demos run
the real policies faster (``AIRFLOW__ORDER_PROVIDER__TIME_SCALE=0.01``).

"Attempts" counts every try, so Airflow's ``retries`` is ``attempts - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

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


def time_scale() -> float:
    """Return ``[order_provider] time_scale`` (default 1.0); it must be a positive number."""
    from airflow.sdk.configuration import conf

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

    def retry_policy(self) -> ExceptionRetryPolicy:
        """Airflow retry policy that fails at once on the errors no retry can fix."""
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

    def operator_defaults(self, scale: float | None = None) -> dict[str, Any]:
        """Operator keyword arguments that implement this policy, scaled by ``time_scale``."""
        scale = time_scale() if scale is None else scale
        return {
            "retries": self.attempts - 1,
            "retry_delay": self.first_interval * scale,
            "retry_exponential_backoff": self.backoff,
            "max_retry_delay": self.max_interval * scale,
            "execution_timeout": max(self.step_timeout * scale, MIN_STEP_TIMEOUT),
            "retry_policy": self.retry_policy(),
        }


PAYMENT = ServicePolicy(
    service="payment",
    attempts=3,
    first_interval=timedelta(seconds=1),
    backoff=2.0,
    max_interval=timedelta(seconds=10),
    step_timeout=timedelta(seconds=30),
    never_retried=(PaymentDeclinedError, FraudDetectedError, InsufficientFundsError, CardExpiredError),
)
INVENTORY = ServicePolicy(
    service="inventory",
    attempts=5,
    first_interval=timedelta(milliseconds=100),
    backoff=1.5,
    max_interval=timedelta(seconds=2),
    step_timeout=timedelta(seconds=30),
    never_retried=(ItemDiscontinuedError, RegionNotServicedError),
)
SHIPPING = ServicePolicy(
    service="shipping",
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
)

POLICIES: dict[str, ServicePolicy] = {p.service: p for p in (PAYMENT, INVENTORY, SHIPPING, NOTIFICATION)}

#: Request timeout of one HTTP call, unless the connection's ``timeout`` field says otherwise.
DEFAULT_REQUEST_TIMEOUT = 10.0
