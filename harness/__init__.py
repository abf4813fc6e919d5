"""
What the tests and the benchmarks share to run the order provider for real: a throw-away PostgreSQL
database, processes in their own process groups, a real Airflow 3 and a REST client for it, the
distributed (CeleryExecutor) topology, waits, and the order's ledger in a comparable shape.

Independent of pytest and of both ``tests/`` and ``benchmarks/`` (each imports this package, never
the other), so that scripts can use it too. Not part of the provider's wheel.

* :mod:`.common`: paths, run states, :class:`HarnessError`, small helpers (free port, log tails, env files).
* :mod:`.postgres`: :class:`PostgresDatabase`, created for one deployment and dropped again.
* :mod:`.processes`: :class:`ManagedProcess`, one command in its own process group, stopped by its id.
* :mod:`.deployment`: :class:`AirflowDeployment`, api-server, scheduler, dag-processor and triggerer on
  the LocalExecutor, configured through the environment only (every server binds 127.0.0.1).
* :mod:`.client`: :class:`AirflowClient`, the public REST API (``/api/v2``) with a bearer token.
* :mod:`.topology` and :mod:`.celery`: what a distributed deployment runs (``docker-compose.yaml``
  follows it too) and :class:`~harness.celery.CeleryDeployment`, that topology as local processes.
* :mod:`.scenario`: progress lines, a wait for a condition, what a venv has installed, a teardown.
* :mod:`.orders`: the example order and an order's audit ledger as ``(service, operation, status)``.
"""

from __future__ import annotations

from harness.client import AirflowClient
from harness.common import (
    NOT_RUN_TI_STATES,
    REPO_ROOT,
    TERMINAL_RUN_STATES,
    HarnessError,
    free_port,
    read_env_file,
    report,
    tail,
)
from harness.deployment import COMPONENTS, DEFAULT_EXTRA_USERS, AirflowDeployment
from harness.postgres import PostgresDatabase
from harness.processes import (
    ManagedProcess,
    ProcessInfo,
    process_ancestry,
    process_info,
    run_logged,
    wait_until_dead,
)

__all__ = [
    "COMPONENTS",
    "DEFAULT_EXTRA_USERS",
    "NOT_RUN_TI_STATES",
    "REPO_ROOT",
    "TERMINAL_RUN_STATES",
    "AirflowClient",
    "AirflowDeployment",
    "HarnessError",
    "ManagedProcess",
    "PostgresDatabase",
    "ProcessInfo",
    "free_port",
    "process_ancestry",
    "process_info",
    "read_env_file",
    "report",
    "run_logged",
    "tail",
    "wait_until_dead",
]
