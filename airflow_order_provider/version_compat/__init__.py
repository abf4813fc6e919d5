"""
Everything that differs between the Airflow releases the provider supports, in one place.

The provider supports Airflow 3.1.0 and later (``MIN_AIRFLOW_VERSION``; the package's dependency
floor says the same). Airflow's version is read once, here, from ``airflow.__version__``; every
other module imports a flag (``AIRFLOW_V_3_2_PLUS``...) or a symbol this module picked for the
running release. No version check lives anywhere else. (The layout is Airflow's own providers':
``airflow/providers/*/version_compat.py``.)

What each release lacks, read in the installed sources of apache-airflow 3.1.8, 3.2.2 and 3.3.2
(task SDK 1.1.8, 1.2.2, 1.3.2; providers-standard 1.21.0), and what the provider does instead
(the README's support table says the same):

* **Retry policies** (``retry_policy=``, ``ExceptionRetryPolicy``: 3.3.0). Before 3.3 an error
  that no retry can fix is turned into Airflow's own ``AirflowFailException`` in the task
  (:func:`fail_at_once_on`), which fails the task on its first try as the policy's ``FAIL``
  rule does; retries and back-off come from the same policy table.
* **A task waiting for a person without a trigger** (``TaskAwaitingInput``: 3.3.0). Before 3.3 a
  paused step waits as the standard ``HITLOperator`` does there: deferred to
  ``HITLTrigger`` on the triggerer (:func:`await_decision`).
* **``Connection.aextra_dejson``** (3.3.2): before, the extras are read in a worker thread.
* **3.1** differs in more: ``retry_exponential_backoff`` is on/off and doubles (a multiplier from
  3.2; :func:`exponential_backoff`), configuration and exceptions live in ``airflow.configuration`` and
  ``airflow.exceptions`` (``airflow.sdk.configuration`` and ``airflow.sdk.exceptions`` are 3.2),
  ``BaseBranchOperator`` is the standard provider's, deadline alerts live in
  ``airflow.sdk.definitions.deadline`` and take no custom reference (plugins register
  ``deadline_references`` from 3.2): the ship deadline counts from the run's queued time instead
  of the order's placed-at time; and a new run's task instances are built without the run in
  ``insert_mapping`` (see :func:`run_being_created`). No ``cli`` entry in provider info
  (Airflow's CLI loads provider commands from 3.2): the setup command runs as
  ``python -m airflow_order_provider.cli setup``.

The workarounds of ``dag.test()``'s upstream bugs, each guarded by the releases it affects, are in
:mod:`airflow_order_provider.version_compat.dag_test`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow import __version__ as AIRFLOW_VERSION_STRING
from packaging.version import Version

#: The oldest Airflow the provider runs on (pyproject.toml's dependency floor says the same).
MIN_AIRFLOW_VERSION = "3.1.0"

AIRFLOW_VERSION = Version(Version(AIRFLOW_VERSION_STRING).base_version)


def _at_least(version: str) -> bool:
    return AIRFLOW_VERSION >= Version(version)


AIRFLOW_V_3_1_PLUS: bool = _at_least("3.1.0")
AIRFLOW_V_3_2_PLUS: bool = _at_least("3.2.0")
AIRFLOW_V_3_3_PLUS: bool = _at_least("3.3.0")
AIRFLOW_V_3_3_2_PLUS: bool = _at_least("3.3.2")

#: Task-level retry policies (``retry_policy=``); before, :func:`fail_at_once_on` stands in.
HAS_RETRY_POLICY = AIRFLOW_V_3_3_PLUS
#: Custom deadline references registered by plugins (the order's placed-at time).
HAS_CUSTOM_DEADLINE_REFERENCES = AIRFLOW_V_3_2_PLUS
#: Provider CLI commands through provider info's ``cli`` entry (``airflow orders setup``).
HAS_PROVIDER_CLI = AIRFLOW_V_3_2_PLUS
#: Task state stores (``airflow.state``, ``context["task_state_store"]``): not in 3.1.8 or 3.2.2.
HAS_TASK_STATE_STORE = AIRFLOW_V_3_3_PLUS

if AIRFLOW_V_3_2_PLUS:
    from airflow.sdk import BaseBranchOperator
    from airflow.sdk.configuration import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
        AirflowTaskTimeout,
        DownstreamTasksSkipped,
    )
else:
    from airflow.configuration import conf  # type: ignore[no-redef]
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
        AirflowTaskTimeout,
        DownstreamTasksSkipped,
    )
    from airflow.providers.standard.operators.branch import BaseBranchOperator  # type: ignore[no-redef]

if AIRFLOW_V_3_3_PLUS:
    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
else:
    ExceptionRetryPolicy = RetryAction = RetryRule = None  # type: ignore[assignment,misc]

__all__ = [
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "BaseBranchOperator",
    "DownstreamTasksSkipped",
    "ExceptionRetryPolicy",
    "MIN_AIRFLOW_VERSION",
    "RetryAction",
    "RetryRule",
    "conf",
]


def require_supported_airflow(package: str = "airflow-order-provider", version: str = "") -> None:
    """Refuse an Airflow below the floor, in one line naming both versions."""
    if AIRFLOW_VERSION < Version(MIN_AIRFLOW_VERSION):
        raise RuntimeError(
            f"The package `{package}:{version}` needs Apache Airflow {MIN_AIRFLOW_VERSION}+; "
            f"this is Apache Airflow {AIRFLOW_VERSION_STRING}."
        )


# -- retry policies (3.3.0) -------------------------------------------------------------------------


@contextmanager
def fail_at_once_on(is_never_retried: Callable[[BaseException], bool]) -> Iterator[None]:
    """
    Before Airflow 3.3 (no ``retry_policy``): an error that ``is_never_retried`` fails the task at
    once, as Airflow's own ``AirflowFailException`` (no retry), the way the policy's ``FAIL`` rule
    does on 3.3. On 3.3+ nothing changes: the task's retry policy decides.
    """
    try:
        yield
    except AirflowFailException:
        raise
    except Exception as error:
        if not HAS_RETRY_POLICY and is_never_retried(error):
            raise AirflowFailException(
                f"{getattr(error, 'error_type', type(error).__name__)}: {error} (never retried)"
            ) from error
        raise


# -- back-off (a multiplier from 3.2) ----------------------------------------------------------------------

#: ``retry_exponential_backoff`` is the back-off's multiplier from 3.2; in 3.1 it is on or off, and on
#: means doubling (``retry_delay * 2 ** (try - 1)``, with jitter, capped by ``max_retry_delay``).
BACKOFF_IS_A_MULTIPLIER = AIRFLOW_V_3_2_PLUS


def exponential_backoff(factor: float) -> float | bool:
    """Airflow's ``retry_exponential_backoff`` for the policy table's ``factor``: 3.1 doubles whenever it is above 1."""
    return float(factor) if BACKOFF_IS_A_MULTIPLIER else factor > 1


# -- waiting for a person (TaskAwaitingInput: 3.3.0) -----------------------------------------------


def await_decision(
    operator: Any,
    *,
    ti_id: Any,
    options: list[str],
    defaults: list[str],
    timeout: timedelta,
    method_name: str,
) -> None:
    """
    Park ``operator``'s task until a person answers its Required Action (already written with
    ``upsert_hitl_detail``), then resume it in ``method_name`` with the answer.

    3.3+: the ``awaiting_input`` state (``TaskAwaitingInput``), no trigger. Before: deferred to the
    standard provider's ``HITLTrigger`` on the triggerer, as its ``HITLOperator`` does there; its
    timeout event without an answer carries the defaults.
    """
    if AIRFLOW_V_3_3_PLUS:
        from airflow.sdk.exceptions import TaskAwaitingInput

        raise TaskAwaitingInput(method_name=method_name, timeout=timeout)

    from airflow.providers.standard.triggers.hitl import HITLTrigger
    from airflow.sdk.timezone import utcnow

    operator.defer(
        trigger=HITLTrigger(
            ti_id=ti_id,
            options=options,
            defaults=defaults,
            params={},
            multiple=False,
            timeout_datetime=utcnow() + timeout,
        ),
        method_name=method_name,
    )


# -- connections (aextra_dejson: 3.3.2) ---------------------------------------------------------------


async def connection_extra(connection: Any) -> dict[str, Any]:
    """
    A connection's extras, their secrets masked, without blocking the event loop: 3.3.2's
    ``aextra_dejson`` (masks through the supervisor asynchronously); before, ``extra_dejson`` in a
    worker thread.
    """
    if not connection.extra:
        return {}
    if AIRFLOW_V_3_3_2_PLUS:
        return await connection.aextra_dejson()
    return await asyncio.to_thread(lambda: connection.extra_dejson)


# -- deadline alerts ------------------------------------------------------------------------------------


def deadline_alert_classes() -> tuple[Any, Any, Any]:
    """``(DeadlineAlert, DeadlineReference, AsyncCallback)`` of this release (``airflow.sdk`` from 3.2)."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference
    else:
        from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference
    return DeadlineAlert, DeadlineReference, AsyncCallback


def order_deadline_reference() -> Any:
    """
    What the ship deadline counts from: the order's placed-at time (``OrderPlacedAt``, a custom
    reference registered by the provider's plugin) from 3.2; on 3.1, which takes no custom
    reference, the run's queued time (``DeadlineReference.DAGRUN_QUEUED_AT``). For a manual run
    (an order) the two are the same instant unless the run waited to be queued (a paused DAG,
    ``max_active_runs``) or a task of it was cleared.
    """
    if HAS_CUSTOM_DEADLINE_REFERENCES:
        from airflow_order_provider.deadlines import OrderPlacedAt

        return OrderPlacedAt()
    _, DeadlineReference, _ = deadline_alert_classes()
    return DeadlineReference.DAGRUN_QUEUED_AT


# -- a new run's task instances: which run? (priority weight strategies) ---------------------------------
#
# Airflow builds a new run's task instances as transient objects (``TaskInstance.insert_mapping``)
# and calls the priority weight strategy with one that has no ``dag_run``. From 3.2 the run being
# created is the ``dag_run`` argument of ``insert_mapping`` (and of ``refresh_from_task``); in 3.1
# ``insert_mapping`` takes no run, and the run is ``self`` of its caller (the generator
# ``create_ti_mapping`` in ``DagRun._get_task_creator``, a closure over the run). The strategy
# finds it there, without touching the database: it runs inside the scheduler's (or the API
# server's) transaction, which must not be committed from here.

#: How many callers up from the strategy the run is looked for.
_CALLER_DEPTH = 4
#: The names the run being created has in those callers' frames.
_RUN_NAMES: tuple[str, ...] = ("dag_run",) if AIRFLOW_V_3_2_PLUS else ("dag_run", "self")


def run_being_created(matches: Callable[[Any], bool], depth: int = 2) -> Any | None:
    """
    The DagRun in the frames above the caller's ``depth``-th caller for which ``matches`` holds,
    if any (``depth=2`` from ``_run_of`` called by ``get_weight``: ``get_weight``'s caller).
    """
    frame = sys._getframe(depth + 1)
    for _ in range(_CALLER_DEPTH):
        if frame is None:
            break
        for name in _RUN_NAMES:
            candidate = frame.f_locals.get(name)
            if matches(candidate):
                return candidate
        frame = frame.f_back
    return None

