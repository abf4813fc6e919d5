from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_order_provider import exceptions as exc
from airflow_order_provider.policies import (
    BUILTIN_POLICIES,
    MIN_STEP_TIMEOUT,
    NOTIFICATION,
    PAYMENT,
    SHIPPING,
    time_scale,
)
from airflow_order_provider.version_compat import RetryAction, exponential_backoff
from tests.compat import needs_retry_policy


def test_the_table_holds_the_seeds_numbers():
    assert {name: (p.attempts, p.first_interval, p.backoff, p.max_interval) for name, p in BUILTIN_POLICIES.items()} == {
        "payment": (3, timedelta(seconds=1), 2.0, timedelta(seconds=10)),
        "inventory": (5, timedelta(milliseconds=100), 1.5, timedelta(seconds=2)),
        "shipping": (3, timedelta(seconds=5), 2.0, timedelta(seconds=30)),
        "notification": (10, timedelta(seconds=10), 2.0, timedelta(minutes=5)),
    }
    assert PAYMENT.step_timeout == timedelta(seconds=30)


def test_attempts_count_every_try_and_time_scale_shrinks_intervals():
    defaults = SHIPPING.operator_defaults(scale=0.1)
    assert defaults["retries"] == 2
    assert defaults["retry_delay"] == timedelta(seconds=0.5)
    assert defaults["max_retry_delay"] == timedelta(seconds=3)
    assert defaults["retry_exponential_backoff"] == exponential_backoff(2.0)  # 2.0; True (doubling) on 3.1
    assert defaults["execution_timeout"] == timedelta(seconds=6)
    assert NOTIFICATION.operator_defaults(scale=0.001)["execution_timeout"] == MIN_STEP_TIMEOUT


def test_time_scale_comes_from_the_config(monkeypatch):
    monkeypatch.setenv("AIRFLOW__ORDER_PROVIDER__TIME_SCALE", "0.01")
    assert time_scale() == 0.01
    assert PAYMENT.operator_defaults()["retry_delay"] == timedelta(milliseconds=10)
    monkeypatch.setenv("AIRFLOW__ORDER_PROVIDER__TIME_SCALE", "0")
    with pytest.raises(ValueError, match="time_scale must be positive"):
        time_scale()


#: (policy, error, what the retry policy decides): the table the retry policy (3.3+) and, before
#: 3.3, the operators' fail-at-once (tests/unit/test_version_compat.py) both follow.
RETRY_TABLE = [
        (PAYMENT, exc.PaymentDeclinedError("declined"), "FAIL"),
        (PAYMENT, exc.FraudDetectedError("fraud"), "FAIL"),
        (PAYMENT, exc.InsufficientFundsError("funds"), "FAIL"),
        (PAYMENT, exc.CardExpiredError("expired"), "FAIL"),
        (PAYMENT, exc.ServiceUnavailableError("503"), "DEFAULT"),
        (PAYMENT, exc.ServiceTimeoutError("slow"), "DEFAULT"),
        (PAYMENT, exc.ServiceAuthenticationError("401"), "FAIL"),
        (BUILTIN_POLICIES["inventory"], exc.ItemDiscontinuedError("gone"), "FAIL"),
        (BUILTIN_POLICIES["inventory"], exc.RegionNotServicedError("far"), "FAIL"),
        (BUILTIN_POLICIES["inventory"], exc.OutOfStockError("none left"), "DEFAULT"),
        (SHIPPING, exc.AddressUndeliverableError("nowhere"), "FAIL"),
        (SHIPPING, exc.ServiceConnectionError("refused"), "DEFAULT"),
        (NOTIFICATION, exc.ServiceUnavailableError("503"), "DEFAULT"),
    ]


@needs_retry_policy
@pytest.mark.parametrize(("policy", "error", "action"), RETRY_TABLE)
def test_retry_policy_fails_at_once_only_on_errors_no_retry_can_fix(policy, error, action):
    assert policy.retry_policy().evaluate(error, try_number=1, max_tries=policy.attempts).action is getattr(
        RetryAction, action
    )


@needs_retry_policy
def test_retry_policy_survives_dag_serialization():
    from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy

    restored = ExceptionRetryPolicy.deserialize(PAYMENT.retry_policy().serialize())
    decision = restored.evaluate(exc.CardExpiredError("expired"), try_number=1, max_tries=3)
    assert decision.action is RetryAction.FAIL


def test_compensations_try_quickly_then_wait_deferred_for_hours_and_a_deployment_shortens_it(monkeypatch):
    import json
    from datetime import timedelta

    from airflow_order_provider.policies import BUILTIN_COMPENSATION_POLICIES, compensation_policy

    assert {name: (p.attempts, p.horizon) for name, p in BUILTIN_COMPENSATION_POLICIES.items()} == {
        "payment": (5, timedelta(hours=72)), "inventory": (5, timedelta(hours=24)), "shipping": (5, timedelta(hours=24))}
    assert {(p.wait_interval, p.max_wait_interval) for p in BUILTIN_COMPENSATION_POLICIES.values()} == {
        (timedelta(minutes=1), timedelta(minutes=30))}
    monkeypatch.setenv("AIRFLOW__ORDER_PROVIDER__POLICY_OVERRIDES", json.dumps(
        {"inventory.compensation": {"horizon": 600, "wait_interval": 100, "max_wait_interval": 200}}))
    row = compensation_policy("inventory")
    assert (row.horizon, row.wait_interval, row.max_wait_interval) == (
        timedelta(seconds=600), timedelta(seconds=100), timedelta(seconds=200))
    assert compensation_policy("payment").horizon == timedelta(hours=72)


def test_the_run_timeout_outlasts_a_refund_waiting_for_a_cancel_that_waits_its_whole_horizon():
    from datetime import timedelta

    from airflow_order_provider.policies import order_times

    # workflow 1 h + approval 24 h + dispatch 24 h + 4 decisions of 24 h + margin 1 h = 146 h before issue 19
    assert order_times().run_timeout(scale=1.0) >= timedelta(hours=146) + timedelta(hours=72 + 24)
