"""
Answers that prove nothing about now: a replayed answer is checked against the record as it is
now, and an answer lost to a timeout or a 5xx (or a key refused as reused) is replaced by the record
the request left at the service, when exactly one is in effect.
"""

from __future__ import annotations

from typing import Any

from airflow_order_provider.exceptions import (
    IdempotencyKeyReusedError,
    OrderAlreadyUndoneError,
    OrderServiceError,
    ServiceTimeoutError,
    ServiceUnavailableError,
)


class AdoptsLostAnswers:
    """
    Mixed into a step that calls its service (:class:`~airflow_order_provider.operators.step.OrderStepOperator`):
    it needs the step's ``hook``, ``order_id``, ``task_id`` and ``log``.
    """

    def call_idempotent(self, send: Any) -> dict[str, Any]:
        """
        Send the step's request (``send()``), and make sure its answer is true now.

        A replayed answer is checked against the record as it is now. A 409 for a key used with
        another request means an earlier try (whose answer was lost) was carried out with that other
        request: the step adopts the record it left, when there is exactly one in effect.
        """
        try:
            answer = send()
        except IdempotencyKeyReusedError:
            adopted = self.single_live_record()
            if adopted is None:
                raise
            self.log.warning(
                "%s for order %s: an earlier try was carried out with another request; adopting %s %s",
                self.task_id, self.order_id, self.hook.record_id_field, adopted.get(self.hook.record_id_field),
            )
            return adopted
        except (ServiceUnavailableError, ServiceTimeoutError) as error:
            adopted = self.adopt_after_lost_answer(error)
            if adopted is None:
                raise
            return adopted
        if getattr(answer, "replayed", False) and self.hook.undone_statuses:
            record_id = answer.get(self.hook.record_id_field)
            now = self.hook.get_record(record_id) if record_id else answer
            if now.get("status") in self.hook.undone_statuses:
                raise OrderAlreadyUndoneError(
                    f"{self.hook.record_id_field} {record_id} of order {self.order_id} is {now.get('status')}:"
                    " the order was cancelled before. Nothing more is done for it; place it again under a"
                    " new order id."
                )
            self.log.info("%s for order %s was done before: %s %s is %s", self.task_id, self.order_id,
                          self.hook.record_id_field, record_id, now.get("status"))
        return answer

    def adopt_after_lost_answer(self, error: OrderServiceError) -> dict[str, Any] | None:
        """
        The record this step's request left, when its answer was lost (a 5xx, a timeout) and the
        service now shows exactly one record of the order in effect: the request was carried out.
        Adopting it at once, instead of failing the try, is what a retry would get (the replay of
        that record) without the wait, in which the carrier may pick the parcel up and the order
        can no longer be undone. When the service cannot say (it still fails) or shows nothing,
        the try fails as before and the retry policy decides.
        """
        if not self.hook.live_statuses:
            return None
        try:
            adopted = self.single_live_record()
        except OrderServiceError as asking:
            self.log.info("%s for order %s: %s, and the service cannot say what it did (%s)",
                          self.task_id, self.order_id, error, asking)
            return None
        if adopted is not None:
            self.log.warning(
                "%s for order %s: the answer was lost (%s), but the request was carried out; adopting %s %s",
                self.task_id, self.order_id, error, self.hook.record_id_field, adopted.get(self.hook.record_id_field),
            )
        return adopted

    def single_live_record(self) -> dict[str, Any] | None:
        """The one record of the order in effect at the service that this step could have left, if exactly one."""
        live = self.adoptable(self.hook.live_for_order(str(self.order_id)))
        return live[0] if len(live) == 1 else None

    def adoptable(self, live: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Of the order's records in effect at the service, those this step's request could have left."""
        return live
