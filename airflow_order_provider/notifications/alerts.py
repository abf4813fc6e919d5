"""
Alerts for operations: a step that ran out of retries, a compensation that failed for good.

:class:`OrderAlertNotifier` is an ordinary Airflow notifier, used as ``on_failure_callback``.
By default it needs no outside service: it writes the alert to the task log and emails it to
``[order_provider] alert_email`` through the notification service (its outbox). Add any other
notifier (Slack, SMTP...) next to it in the DAG's ``on_failure_callback`` list.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from airflow_order_provider.exceptions import (
    InvalidOrderError,
    OrderAlreadyUndoneError,
    OrderCancelledError,
    OrderRejectedError,
    StepAbandonedError,
    WorkflowTimeoutError,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrderAlert:
    """One alert: what operations must know, in business words."""

    order_id: str
    task_id: str
    severity: str  # "warning" or "critical"
    subject: str
    body: str
    manual_intervention: bool = False


def _order_id(context: Context) -> str:
    task = context.get("task")
    order_id = getattr(task, "order_id", None)
    if order_id and "{{" not in str(order_id):
        return str(order_id)
    from airflow_order_provider.order_conf import order_id_of

    return order_id_of(context.get("dag_run")) or "unknown order"


def describe_alert(context: Context) -> OrderAlert | None:
    """
    The alert a task failure calls for, or None when the failure is business as usual.

    A refused order (bad input, a declined card, an undeliverable address, an order id already
    cancelled) is not an incident: the order is compensated and the customer told. Retries running
    out, a person abandoning an order, a request the service could not accept (a wrong API key, a
    malformed request, a key reused for another request) and above all a compensation failing for
    good are.
    """
    from airflow_order_provider.operators.compensation import OrderCompensationOperator
    from airflow_order_provider.operators.step import OrderStepOperator
    from airflow_order_provider.saga.failure import StepFailure

    task = context.get("task")
    ti = context.get("ti")
    error = context.get("exception")
    order_id = _order_id(context)
    task_id = getattr(task, "task_id", "unknown task")
    run_id = getattr(context.get("dag_run"), "run_id", "") or context.get("run_id", "")
    tries = getattr(ti, "try_number", None)
    message = f"{type(error).__name__}: {error}" if error else "see the task log"

    if "reason" in context and context["reason"] != "timed_out":
        return None  # the DAG's own callback for a run that failed: its tasks alerted already
    if context.get("reason") == "timed_out":
        # The DAG's own callback: Airflow's dagrun_timeout, the backstop, fired.
        return OrderAlert(
            order_id=order_id, task_id="(run)", severity="critical", manual_intervention=True,
            subject=f"MANUAL INTERVENTION NEEDED: order {order_id}: its run timed out",
            body=(
                f"The run {run_id} of order {order_id} hit Airflow's dagrun_timeout, which skipped its "
                "remaining tasks, compensations included. Clear the task plan_compensation of that run "
                "in the Airflow UI to compensate what completed, or settle the order by hand."
            ),
        )
    if isinstance(error, (InvalidOrderError, OrderRejectedError, OrderCancelledError, OrderAlreadyUndoneError)):
        return None
    if isinstance(error, WorkflowTimeoutError):
        return OrderAlert(
            order_id=order_id, task_id=task_id, severity="warning",
            subject=f"Order {order_id} timed out at {task_id}",
            body=f"{error}. The completed steps are being compensated (run {run_id}).",
        )
    if isinstance(task, OrderCompensationOperator):
        from airflow_order_provider.operators.compensation import UNDO_KEY

        waited = (ti.xcom_pull(task_ids=task_id, key=UNDO_KEY) if ti is not None else None) or {}
        since = f" since {waited['since']} ({waited.get('calls')} calls)" if waited.get("since") else ""
        last = waited.get("last_error") or message
        return OrderAlert(
            order_id=order_id,
            task_id=task_id,
            severity="critical",
            manual_intervention=True,
            subject=f"MANUAL INTERVENTION NEEDED: order {order_id}: compensation {task_id} failed",
            body=(
                f"Compensation {task_id} of order {order_id} kept failing{since}, and gave up after {tries} tries.\n"
                f"Last error: {last}\n"
                f"Still in effect for the order: {still_live(order_id)}\n"
                f"The compensations that wait for {task_id} are held back; the others have run. "
                f"Fix the cause, then clear the task {task_id} of run {run_id} in the Airflow UI: "
                "the retry is safe, the service remembers what was already undone, and a message resolves "
                "this alert once it succeeds."
            ),
        )
    if isinstance(error, StepAbandonedError):
        return OrderAlert(
            order_id=order_id, task_id=task_id, severity="critical", manual_intervention=True,
            subject=f"Order {order_id} abandoned at {task_id}",
            body=f"{error}. Nothing was undone: settle the order by hand (run {run_id}).",
        )
    if isinstance(task, OrderStepOperator):
        failure = StepFailure.pull(ti, task_id) if ti is not None else None
        if failure is not None and failure.misconfigured:
            return OrderAlert(
                order_id=order_id, task_id=task_id, severity="critical", manual_intervention=True,
                subject=f"Order {order_id}: {task_id} was refused by the {task.service} service: {failure.error_type}",
                body=(
                    f"The {task.service} service refused {task_id} of order {order_id}: {message}\n"
                    "This is not a business refusal: check the connection's URL and API key, and the provider and "
                    f"service versions. The order is being compensated (run {run_id})."
                ),
            )
        if failure is not None and failure.never_retried:
            return None
        mode = (failure.on_retries_exhausted if failure else None) or task.policy.on_retries_exhausted
        step = task.saga.step(task_id) if task.saga is not None else None
        if step is not None and not step.rolls_back:
            what = "The order is complete, but the customer was not told: send the confirmation by hand."
        elif mode == "fail":
            what = "Nothing was undone (on_retries_exhausted=fail): settle the order by hand."
        else:
            what = "The completed steps are being compensated in reverse order."
        if failure is not None and failure.ambiguous:
            what += (
                f" Its last answer proved nothing (the call may have been carried out): the planner asks the"
                f" {task.service} service what is in effect before it decides."
            )
        return OrderAlert(
            order_id=order_id, task_id=task_id, severity="warning" if mode == "compensate" else "critical",
            manual_intervention=mode == "fail",
            subject=f"Order {order_id}: {task_id} failed after {tries} tries",
            body=f"{task_id} of order {order_id} ran out of retries: {message}\n{what} (run {run_id})",
        )
    return OrderAlert(
        order_id=order_id, task_id=task_id, severity="critical",
        subject=f"Order {order_id}: task {task_id} failed",
        body=f"{task_id} of order {order_id} failed: {message} (run {run_id})",
    )


#: Subject prefix of the message that resolves a manual-intervention alert.
RESOLVED_PREFIX = "RESOLVED: order "


def still_live(order_id: str) -> str:
    """What each service still has in effect for the order, in words (never raises)."""
    from airflow_order_provider.operators.base import hook_for
    from airflow_order_provider.order_saga import ORDER_SAGA

    parts = []
    for step in ORDER_SAGA.steps:
        if not step.compensation or not step.service:
            continue
        try:
            live = hook_for(step.service).live_for_order(order_id)
        except Exception as error:  # an alert goes out even when a service cannot say
            parts.append(f"{step.service}: cannot say ({type(error).__name__})")
            continue
        hook = hook_for(step.service)
        records = ", ".join(f"{r.get(hook.record_id_field)} {r.get('status')}" for r in live) or "nothing"
        parts.append(f"{step.service}: {records}")
    return "; ".join(parts)


def resolved_alert(*, order_id: str, task_id: str, run_id: str, try_number: int) -> None:
    """Tell operations that the compensation a manual alert named has now succeeded (never raises)."""
    subject = f"{RESOLVED_PREFIX}{order_id}: compensation {task_id} succeeded"
    body = (f"Compensation {task_id} of order {order_id} succeeded on try {try_number} (run {run_id}). The manual "
            "intervention asked for it is no longer needed.")
    log.warning("ORDER ALERT RESOLVED %s", subject)
    send_alert_email(order_id=order_id, subject=subject, body=body,
                     idempotency_key=f"{order_id}:alert.{run_id}.{task_id}.resolved")


def rolled_forward_alert(*, order_id: str, run_id: str, what: str) -> None:
    """Tell operations that an order was finished instead of undone (never raises)."""
    subject = f"Order {order_id} rolled forward: completed instead of compensated"
    log.warning("ORDER ALERT %s\n%s", subject, what)
    send_alert_email(order_id=order_id, subject=subject, body=f"{what} (run {run_id})",
                     idempotency_key=f"{order_id}:alert.{run_id}.rolled_forward")


class OrderAlertNotifier(BaseNotifier):
    """
    Alert operations about an order task that failed for good.

    :param alert_email: where to email alerts; defaults to ``[order_provider] alert_email``;
        empty to only log them.
    :param conn_id: notification service connection for the email (default
        ``order_notification_default``).
    """

    template_fields = ("alert_email",)

    def __init__(self, *, alert_email: str | None = None, conn_id: str | None = None) -> None:
        super().__init__()
        self.alert_email = alert_email
        self.conn_id = conn_id

    def notify(self, context: Context) -> None:
        alert = describe_alert(context)
        if alert is None:
            self.log.info("Order task failed as business as usual: no alert")
            return
        self.log.error("ORDER ALERT [%s] %s\n%s", alert.severity, alert.subject, alert.body)
        recipient = alert_recipient(self.alert_email)
        if recipient:
            self._email(context, alert, recipient)

    def _email(self, context: Context, alert: OrderAlert, recipient: str) -> None:
        ti: Any = context.get("ti")
        try_number = getattr(ti, "try_number", 0)
        run_id = getattr(context.get("dag_run"), "run_id", "") or context.get("run_id", "")
        send_alert_email(
            order_id=alert.order_id,
            subject=alert.subject,
            body=alert.body,
            idempotency_key=f"{alert.order_id}:alert.{run_id}.{alert.task_id}.{try_number}",
            alert_email=recipient,
            conn_id=self.conn_id,
        )


def alert_recipient(alert_email: str | None = None) -> str:
    """``alert_email`` if given, else ``[order_provider] alert_email``; empty means log only."""
    if alert_email is not None:
        return alert_email
    from airflow_order_provider.settings import option

    return option("alert_email")


def send_alert_email(
    *,
    order_id: str,
    subject: str,
    body: str,
    idempotency_key: str,
    alert_email: str | None = None,
    conn_id: str | None = None,
) -> None:
    """
    Email an alert to operations through the notification service; never raises.

    An alert is the one message that must not be lost to a passing fault: transient trouble (5xx,
    timeouts, a refused connection) is retried, :data:`ALERT_EMAIL_WAITS` apart, under the same
    idempotency key (a repeat sends nothing twice). What still fails stays in the task log.
    """
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_chain, wait_fixed

    from airflow_order_provider.exceptions import TransientServiceError
    from airflow_order_provider.hooks.notification import NotificationHook

    recipient = alert_recipient(alert_email)
    if not recipient:
        return
    hook = NotificationHook(conn_id=conn_id)
    tries = len(ALERT_EMAIL_WAITS) + 1
    retrying = Retrying(
        retry=retry_if_exception_type(TransientServiceError),
        wait=wait_chain(*(wait_fixed(wait) for wait in ALERT_EMAIL_WAITS or (0,))),
        stop=stop_after_attempt(tries),
        before_sleep=lambda state: log.warning(
            "Emailing the alert to %s failed (%s); trying again in %g s",
            recipient, state.outcome.exception(), state.next_action.sleep,
        ),
        reraise=True,
    )
    try:
        retrying(hook.send_email, order_id=order_id, to=recipient, subject=subject, body=body,
                 idempotency_key=idempotency_key)
    except TransientServiceError as exc:
        log.error("The alert could not be emailed to %s after %d tries: %s", recipient, tries, exc)
    except Exception as exc:  # an alert that cannot be emailed is still in the log
        log.error("The alert could not be emailed to %s: %s", recipient, exc)


#: Seconds between the tries of an alert email (seven tries within about half a minute).
ALERT_EMAIL_WAITS = (1.0, 2.0, 4.0, 8.0, 8.0, 8.0)
