"""Machinery to run a real Airflow 3 deployment for end-to-end tests (one import path for the
harness modules in ``tests/integration/harness/``: common, postgres, processes, client, deployment).

Everything here is independent of pytest so it can be reused by scripts:

* :class:`PostgresDatabase` creates a throw-away metadata database and drops it again.
* :class:`ManagedProcess` runs one command in its own process group, logging to a file,
  and stops the whole group (TERM, then KILL) when asked.
* :class:`AirflowDeployment` writes the configuration (environment variables only, into a
  temporary ``AIRFLOW_HOME``), runs ``airflow db migrate`` and starts ``api-server``,
  ``scheduler``, ``dag-processor`` and ``triggerer`` as four separate processes.
* :class:`AirflowClient` is a small REST client for the public API (``/api/v2``) with a
  bearer token from ``POST /auth/token``.

Every server binds 127.0.0.1 only; the scheduler and triggerer run with
``--skip-serve-logs`` (their log servers would listen on all interfaces, and every
component shares the log folder anyway).
"""

from __future__ import annotations

from tests.integration.harness.client import AirflowClient
from tests.integration.harness.common import (
    NOT_RUN_TI_STATES,
    REPO_ROOT,
    TERMINAL_RUN_STATES,
    HarnessError,
    _pid_alive,
    free_port,
    read_env_file,
    report,
    tail,
)
from tests.integration.harness.deployment import (
    COMPONENTS,
    DEFAULT_EXTRA_USERS,
    AirflowDeployment,
    _render_log_line,
)
from tests.integration.harness.postgres import PostgresDatabase
from tests.integration.harness.processes import (
    ManagedProcess,
    ProcessInfo,
    process_ancestry,
    process_info,
    run_logged,
    wait_until_dead,
)

__all__ = [
    "REPO_ROOT",
    "TERMINAL_RUN_STATES",
    "NOT_RUN_TI_STATES",
    "HarnessError",
    "free_port",
    "_pid_alive",
    "tail",
    "report",
    "read_env_file",
    "PostgresDatabase",
    "ProcessInfo",
    "process_info",
    "process_ancestry",
    "wait_until_dead",
    "ManagedProcess",
    "run_logged",
    "AirflowClient",
    "DEFAULT_EXTRA_USERS",
    "COMPONENTS",
    "AirflowDeployment",
    "_render_log_line",
]
