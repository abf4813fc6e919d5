"""
bench_long_task: one task that sleeps ``conf["seconds"]`` (60 by default), for ``python -m benchmarks.run``.

Run beside the order DAG's bursts of P2 to see what ``[workers] min_heartbeat_interval`` costs a
long task: its heartbeat calls per second, and that it still ends on time. Imports Airflow only.
"""

from __future__ import annotations

import time

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def _sleep(**context) -> float:
    seconds = float((context["dag_run"].conf or {}).get("seconds", 60))
    time.sleep(seconds)
    return seconds


with DAG(
    dag_id="bench_long_task",
    description="Benchmark: one task of a minute beside the bursts (heartbeat cost)",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["benchmark"],
) as dag:
    PythonOperator(task_id="sleep", python_callable=_sleep)
