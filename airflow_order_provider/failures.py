"""
What a failed call means for the order: every failure of a step is classified here, once.

A step's try fails with an error (a service's, a timeout, the order's own checkpoint); this module
turns it into the :class:`~airflow_order_provider.saga.failure.StepFailure` record that the
compensation planner, the alerts and the status queries read: whether another try may help, whether
the call may have been carried out although no proven answer came back, whether the request or its
credentials are wrong, and whether this try is the last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_order_provider.exceptions import (
    IdempotencyKeyReusedError,
    ServiceAuthenticationError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    ServiceValidationError,
    TransientServiceError,
)
from airflow_order_provider.saga.failure import StepFailure
from airflow_order_provider.version_compat import AirflowFailException, AirflowTaskTimeout

if TYPE_CHECKING:
    from airflow_order_provider.policies import ServicePolicy

#: Errors that say the request or its credentials are wrong: not business as usual.
MISCONFIGURED = (ServiceAuthenticationError, ServiceValidationError, IdempotencyKeyReusedError)
#: Failures after which the call may have been carried out although no proven answer came back.
AMBIGUOUS = (ServiceTimeoutError, ServiceUnavailableError, AirflowTaskTimeout, IdempotencyKeyReusedError)
#: Failures another try may clear.
TRANSIENT = (TransientServiceError, AirflowTaskTimeout)


def is_never_retried(policy: ServicePolicy, error: BaseException) -> bool:
    """No retry can fix it: the policy's never-retried errors, and a task failed on purpose."""
    return policy.is_never_retried(error) or isinstance(error, AirflowFailException)


def classify(error: BaseException, *, policy: ServicePolicy, step: str, service: str | None, try_number: int,
             last_try: bool, on_retries_exhausted: str) -> StepFailure:
    """The record of ``step``'s try ``try_number`` failing with ``error``, under its service's ``policy``."""
    never_retried = is_never_retried(policy, error)
    error_type = getattr(error, "error_type", type(error).__name__)
    message: Any = getattr(error, "message", None) or str(error) or error_type
    return StepFailure(
        step=step,
        service=service,
        error_type=error_type,
        message=message,
        transient=isinstance(error, TRANSIENT),
        ambiguous=isinstance(error, AMBIGUOUS),
        never_retried=never_retried,
        misconfigured=isinstance(error, MISCONFIGURED),
        try_number=try_number,
        final=never_retried or last_try,
        on_retries_exhausted=on_retries_exhausted,
    )
