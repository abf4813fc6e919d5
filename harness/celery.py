"""
A distributed Airflow on one machine: CeleryExecutor, several schedulers, Celery workers per queue.

Every component is a local process on 127.0.0.1 in its own process group (stopped by group id):
the API server, :data:`~.topology.SCHEDULERS` schedulers, the DAG processor, the triggerer and
the Celery workers of :func:`~.topology.e2e_workers`. The broker is the machine's Redis, on a
database number of this harness's own (``ORDER_E2E_REDIS_URL``, default db 13, flushed at start
and stop); the metadata database is also Celery's result backend.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import topology
from harness.common import HarnessError, tail
from harness.deployment import AirflowDeployment
from harness.processes import ManagedProcess

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
#: Processes each Celery worker runs tasks in.
WORKER_CONCURRENCY = 6
WORKER_READY = re.compile(r"\S+@\S+ ready\.")


def redis_url() -> str:
    return os.environ.get("ORDER_E2E_REDIS_URL", DEFAULT_REDIS_URL)


def flush_redis(url: str) -> None:
    """Empty the broker's database (only this harness's db number)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except Exception as exc:
        raise HarnessError(f"Redis is not reachable at {url}: {exc} (CI starts one in .ci/run)") from exc


class CeleryDeployment(AirflowDeployment):
    """:class:`AirflowDeployment` with the CeleryExecutor, two schedulers and Celery workers per queue."""

    def __init__(
        self,
        home: Path,
        sql_alchemy_conn: str,
        *,
        broker_url: str | None = None,
        workers: Mapping[str, list[str]] | None = None,
        schedulers: int = topology.SCHEDULERS,
        worker_concurrency: int = WORKER_CONCURRENCY,
        **kwargs: Any,
    ) -> None:
        super().__init__(home, sql_alchemy_conn, **kwargs)
        self.broker_url = broker_url or redis_url()
        self.workers = dict(workers or topology.e2e_workers())
        self.schedulers = schedulers
        self.worker_concurrency = worker_concurrency

    def environment(self) -> dict[str, str]:
        env = super().environment()
        result_backend = "db+" + self.sql_alchemy_conn.replace("postgresql+psycopg2://", "postgresql://")
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": topology.DEFAULT_QUEUE,
                # Each scheduler sends at most this many tasks to Celery at once.
                "AIRFLOW__CORE__PARALLELISM": "16",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
                "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "200",
                # The API server is also the execution API of every running task: two workers, each
                # with up to 25 database connections (Airflow's 5 + 10 ran out under a rush of 100:
                # "QueuePool limit of size 5 overflow 10 reached", POST /orders answered 500).
                "AIRFLOW__API__WORKERS": "2",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "10",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "15",
                # Scheduler HA: a scheduler silent for 10 s is dead; the others adopt its tasks
                # (looked for every 5 s). Production values are in deploy/airflow-order.env.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
                "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            }
        )
        env.update(self.extra_env)
        return env

    def component_argv(self) -> dict[str, list[str]]:
        """``{process name: airflow args}`` of every long-running component, in start order."""
        argv: dict[str, list[str]] = {"api-server": list(topology.AIRFLOW_COMPONENTS["api-server"])}
        for n in range(1, self.schedulers + 1):
            argv[f"scheduler-{n}"] = [*topology.AIRFLOW_COMPONENTS["scheduler"], "--skip-serve-logs"]
        argv["dag-processor"] = list(topology.AIRFLOW_COMPONENTS["dag-processor"])
        argv["triggerer"] = [*topology.AIRFLOW_COMPONENTS["triggerer"], "--skip-serve-logs"]
        for name, queues in self.workers.items():
            argv[name] = [
                *topology.worker_command(queues), "--skip-serve-logs",
                "--celery-hostname", f"{name}@%h", "--concurrency", str(self.worker_concurrency),
            ]
        return argv

    def start(self) -> None:
        flush_redis(self.broker_url)
        env = self.environment()
        for name, args in self.component_argv().items():
            self.start_component(name, args, env)
        self.timings["started_at"] = time.monotonic()

    def start_component(self, name: str, args: list[str] | None = None, env: Mapping[str, str] | None = None):
        """(Re)start one component under its name; its log continues in ``component-logs/<name>.log``."""
        args = args or self.component_argv()[name]
        proc = ManagedProcess(
            name, self.airflow_argv(*args), self.logs_dir / f"{name}.log", env or self.environment(), cwd=self.home
        ).start()
        self.processes[name] = proc
        return proc

    def wait_workers_ready(self, names: list[str] | None = None, timeout: float = 180.0) -> None:
        """Wait until each Celery worker's log says it is ready (connected to the broker, consuming)."""
        names = names or list(self.workers)
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            self.check_processes()
            for name in list(pending):
                proc = self.processes[name]
                text = tail(proc.log_path, 400)
                started = text.rfind("--- ")  # only this start's lines
                if WORKER_READY.search(text[max(started, 0):]):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise HarnessError(f"Celery workers not ready after {timeout:.0f}s: {sorted(pending)}\n{self.diagnostics()}")
            time.sleep(0.5)

    def wait_ready(self, timeout: float = 240.0) -> dict:
        health = super().wait_ready(timeout)
        self.wait_workers_ready(timeout=timeout)
        return health

    def stop(self) -> dict[str, list[int]]:
        killed = super().stop()
        with contextlib.suppress(Exception):
            flush_redis(self.broker_url)
        return killed

    def scheduler_names(self) -> list[str]:
        return [name for name in self.processes if name.startswith("scheduler-")]
