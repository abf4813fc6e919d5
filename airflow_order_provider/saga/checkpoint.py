"""
The checkpoint a saga step passes before it acts: is the saga cancelled, has it run out of time?

One :class:`Checkpoint` serves every step, a sensor in either mode, and a trigger (through
:meth:`Checkpoint.cancel_request`), so the rule is written once. How a cancel is recorded and read
is the caller's business (``read_cancel``); the order saga reads Airflow Variables
(:mod:`airflow_order_provider.signals`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_order_provider.version_compat import AirflowFailException


class SagaCancelledError(AirflowFailException):
    """The saga was asked to cancel: the completed steps are compensated."""


class SagaTimeoutError(AirflowFailException):
    """The saga ran past its workflow timeout: the completed steps are compensated."""


def waited_seconds(result_of: Callable[[str], Any], steps: Iterable[str]) -> float:
    """
    How long the given steps waited (``waited_seconds`` in their results, read with
    ``result_of(task_id)``, e.g. a task's cached XCom reader). A waiting step that failed ends the
    saga, so only the results of those that completed count.
    """
    total = 0.0
    for step in steps:
        value = result_of(step)
        if isinstance(value, dict) and value.get("waited_seconds"):
            total += float(value["waited_seconds"])
    return total


@dataclass(frozen=True)
class WorkflowClock:
    """
    How much of the saga's workflow timeout is left: the limit less the time since it started,
    the waits for people and outside parties left out.
    """

    limit: timedelta
    started: datetime
    waited: float = 0.0

    def time_left(self, now: datetime | None = None) -> timedelta:
        used = (now or datetime.now(timezone.utc)) - self.started - timedelta(seconds=self.waited)
        return self.limit - used


@dataclass(frozen=True)
class Checkpoint:
    """
    :param saga_id: the saga run's business id (an order id).
    :param step: the step about to act.
    :param read_cancel: returns the saga's cancel request, or None.
    :param clock: the workflow clock; None for a step that does not check it.
    :param cancelled_error: raised for a cancelled saga.
    :param timeout_error: raised for a saga past its workflow timeout.
    :param label: how messages name the saga run (``order ord-1``); default its id.
    """

    saga_id: str
    step: str
    read_cancel: Callable[[str], dict[str, Any] | None]
    clock: WorkflowClock | None = None
    cancelled_error: type[Exception] = SagaCancelledError
    timeout_error: type[Exception] = SagaTimeoutError
    label: str = ""

    def cancel_request(self) -> dict[str, Any] | None:
        return self.read_cancel(self.saga_id)

    def cancelled(self, cancel: dict[str, Any], while_: str | None = None) -> Exception:
        reason = cancel.get("reason") or "no reason given"
        where = while_ or f"before {self.step}"
        return self.cancelled_error(f"{self.label or self.saga_id} cancelled {where}: {reason}")

    def check(self) -> None:
        """Raise when the saga is cancelled or out of time; return when the step may act."""
        cancel = self.cancel_request()
        if cancel:
            raise self.cancelled(cancel)
        if self.clock is not None:
            left = self.clock.time_left()
            if left <= timedelta(0):
                raise self.timeout_error(
                    f"{self.label or self.saga_id} ran past its workflow timeout ({-left.total_seconds():.1f} s over)"
                    f" before {self.step}"
                )
