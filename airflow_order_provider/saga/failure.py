"""
The record a saga step leaves when a try fails: why, and what the planner needs to know.

A step writes it as an XCom under :data:`FAILURE_KEY` (Airflow clears a task's XComs at each new
try, so the record always describes the latest try). The compensation planner, the alerts and the
status queries read it back with :meth:`StepFailure.pull`; nothing else knows its XCom form.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: XCom key of a step's failure record.
FAILURE_KEY = "failure"


@dataclass(frozen=True)
class StepFailure:
    """
    Why the latest try of a step failed.

    :param step: the step's task id.
    :param error_type: the error's name (the service's own, e.g. ``PaymentDeclinedError``).
    :param message: what happened, for people.
    :param service: the service the step calls, if any.
    :param transient: another try may succeed (5xx, timeouts...).
    :param ambiguous: the call may have been carried out although no proven answer came back
        (a timeout, a reset connection, a 5xx, a key reused with another request): the planner
        asks the service what is live before it decides.
    :param never_retried: no retry can fix it (a declined card, a wrong API key).
    :param misconfigured: the request or its credentials are wrong (401/403, 422, a reused key):
        not business as usual, operations are alerted even though the step is never retried.
    :param try_number: the try that failed.
    :param final: no further try follows (never retried, or the last try).
    :param on_retries_exhausted: what the step does when it fails for good.
    :param waited_seconds: how long the step waited for a person or an outside party.
    """

    step: str
    error_type: str
    message: str
    service: str | None = None
    transient: bool = False
    ambiguous: bool = False
    never_retried: bool = False
    misconfigured: bool = False
    try_number: int | None = None
    final: bool = True
    on_retries_exhausted: str | None = None
    waited_seconds: float | None = None

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: Any) -> StepFailure | None:
        """The record from its XCom form; None for no record (or one this version cannot read)."""
        if not isinstance(value, dict) or "step" not in value:
            return None
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in value.items() if k in known}
        data.setdefault("error_type", "Error")
        data.setdefault("message", data["error_type"])
        return cls(**data)

    def push(self, ti: Any) -> None:
        ti.xcom_push(key=FAILURE_KEY, value=self.to_xcom())

    @classmethod
    def pull(cls, ti: Any, step: str) -> StepFailure | None:
        return cls.from_xcom(ti.xcom_pull(task_ids=step, key=FAILURE_KEY))

    @property
    def reason(self) -> str:
        return f"{self.step} failed: {self.error_type}: {self.message}"


#: XCom key under which a paused step records the decision a person took.
DECISION_KEY = "decision"
#: The choices a person has for a step that ran out of retries.
RETRY, COMPENSATE, ABANDON = "Retry the step", "Compensate the order", "Abandon the order"
