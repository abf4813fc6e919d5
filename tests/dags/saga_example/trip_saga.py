"""
A three-step saga of plain Python tasks, for the saga machinery's tests (not part of the bundle).

Each step and each undo appends a line to the ledger file named by the run's conf (``ledger``);
``trip_fails_at_<step>`` DAGs fail at that step.
"""

from __future__ import annotations

import json
from functools import partial

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from airflow_order_provider.saga import (
    PlanCompensationOperator,
    Saga,
    SagaCancelledOperator,
    SagaStep,
    SagaTask,
    build_saga,
)
from airflow_order_provider.version_compat import AirflowFailException

LEDGER = "{{ dag_run.conf['ledger'] }}"


def write(ledger: str, entry: str) -> None:
    with open(ledger, "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def do(ledger: str, step: str, fail: bool) -> dict:
    if fail:
        raise AirflowFailException(f"{step} failed")
    write(ledger, f"do {step}")
    return {"done": step}


def undo(ledger: str, step: str) -> dict:
    write(ledger, f"undo {step}")
    return {"undone": step}


def task(fn, **kwargs):
    return partial(PythonOperator, python_callable=fn, op_kwargs={"ledger": LEDGER, **kwargs})


def trip_saga(failing: str | None) -> Saga:
    return Saga(
        name="trip",
        start=SagaTask("start", partial(PythonOperator, python_callable=lambda: {"id": "trip-1"})),
        steps=tuple(
            SagaStep(name, task(do, step=name, fail=name == failing), status=f"doing_{name}",
                     compensation=f"undo_{name}", compensate=task(undo, step=name),
                     # This trip undoes strictly latest first: each undo waits for the next step's.
                     undo_after=(following,) if following else ())
            for name, following in (("a", "b"), ("b", "c"), ("c", None))
        ),
        complete=SagaTask("done", partial(PythonOperator, python_callable=lambda: "done")),
        plan=SagaTask("plan", PlanCompensationOperator),
        cancelled=SagaTask("rolled_back", SagaCancelledOperator),
    )


for failing in (None, "a", "c"):
    with DAG(f"trip_fails_at_{failing}" if failing else "trip", schedule=None,
             start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        build_saga(trip_saga(failing))
