"""The end-to-end fixtures (a pytest plugin, registered by ``tests/conftest.py``): a real Airflow 3 on
PostgreSQL against the reference services, for the integration tests and the chaos suite alike.

``airflow_env`` (session scope) brings up, once per test session:

* a fresh PostgreSQL database ``order_e2e_<pid>_<hex>`` on 127.0.0.1:5432 (user postgres),
  dropped at teardown;
* ``airflow db migrate``, then ``api-server``, ``scheduler``, ``dag-processor`` and
  ``triggerer``, each in its own process group, LocalExecutor, SimpleAuthManager;
* the four ``order_*_default`` connections pointing at the ``order_services`` fixture
  (from tests/conftest.py).

Configuration, lowest precedence first: the harness's own settings (harness/deployment.py), the
settings this project ships for a deployment (``deploy/airflow-order.env``), then this suite's
shorter values (``E2E_DEPLOYMENT_SETTINGS`` below; the chaos suite adds its own when it runs alone).

The AIRFLOW_HOME (config, component logs, task logs) lives in ``.e2e/<db name>/`` in the
repository; it is deleted after a session in which no test that used it failed and kept otherwise
(or always with ``ORDER_E2E_KEEP=1``).

Environment knobs: ``ORDER_E2E_PG_HOST``/``_PORT``/``_USER``, ``ORDER_E2E_DAGS_FOLDER``
(default: the repository's ``dags/``), ``ORDER_E2E_KEEP``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import (
    REPO_ROOT,
    AirflowClient,
    AirflowDeployment,
    HarnessError,
    PostgresDatabase,
    read_env_file,
    report,
)
from harness.services import connections

#: The settings this project ships for a deployment (timeouts, orders in flight); the e2e deployment
#: runs with them, and with E2E_DEPLOYMENT_SETTINGS on top.
DEPLOY_ENV_FILE = REPO_ROOT / "deploy" / "airflow-order.env"

#: What this deployment sets besides the harness defaults and deploy/airflow-order.env, as a
#: deployment would in airflow.cfg: the same mechanisms with shorter times, so that tests end in seconds.
E2E_DEPLOYMENT_SETTINGS = {
    # A paused inventory step waits 600 s x time_scale 0.01 = 6 s for a person, so that the test of
    # an unanswered decision ends in seconds; the other services keep the table's 24 h (864 s here).
    # Compensations keep their 5 quick tries, with waits capped at 100 s x 0.01 = 1 s, then wait
    # deferred between calls (10 s, the provider's floor), for their horizon: the refund 25 s (so that
    # a refund failing for good asks for manual intervention within half a minute), the release and
    # the shipment's cancel 60 s (so that a test sees them waiting deferred, then brings the service back).
    "AIRFLOW__ORDER_PROVIDER__POLICY_OVERRIDES": json.dumps({
        "inventory": {"decision_timeout": 600},
        **{
            f"{service}.compensation": {"max_interval": 100, "wait_interval": 100, "max_wait_interval": 300,
                                        "horizon": horizon}
            for service, horizon in (("payment", 2500), ("inventory", 6000), ("shipping", 6000))
        },
    }),
    # An order's own processing may take 5 h x 0.01 = 180 s (1 h, 36 s, in deploy/): on a loaded
    # machine an order of this suite can take longer than 36 s to reach its last step. The test of
    # the workflow timeout gives its order a short one of its own.
    "AIRFLOW__ORDER_PROVIDER__WORKFLOW_TIMEOUT": "18000",
    # Resolve timed-out Required Actions every 2 s instead of every 15 s.
    "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
    # Worker death: a task not heard of for 10 s (300 s in deploy/) is failed and retried; the
    # scheduler looks every second. Supervisors heartbeat every 2 s (Airflow's default 5 s would
    # leave a healthy task only two heartbeats per 10 s window), so only a dead worker misses five.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "1",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
    # Schedule-to-start: 60 s (600 s in deploy/), checked every 5 s. Every task of this suite starts
    # within seconds of being queued; the value is also the lifetime of a queued task's start token,
    # so it must stay well above any wait in the LocalExecutor's queue on a loaded machine.
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
    # High-value orders wait 800 s x 0.01 = 8 s for approval, so that an unanswered one is
    # rejected in seconds (answered ones get their answer after HUMAN_DELAY, 3 s).
    "AIRFLOW__ORDER_PROVIDER__APPROVAL_TIMEOUT": "800",
    # Orders must ship 4000 s x 0.01 = 40 s after they are placed, so that the deadline test waits
    # 40 s; every other order of the suite finishes well before. (An order expedites with less
    # than the hour, 36 s here, left: from about 4 s after it is placed. tests/dags checks that.)
    "AIRFLOW__ORDER_PROVIDER__SHIP_DEADLINE": "4000",
}
_FAILED = pytest.StashKey[bool]()


@dataclass
class AirflowEnv:
    """What the end-to-end tests get: the running deployment and a logged-in REST client."""

    deployment: AirflowDeployment
    client: AirflowClient
    database: PostgresDatabase
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.deployment.base_url

    def describe_run(self, dag_id: str, run_id: str) -> str:
        """Task states and the logs of unsuccessful tasks, for assertion messages."""
        return self.deployment.describe_run(dag_id, run_id)

    def task_log(self, dag_id: str, run_id: str, task_id: str, lines: int = 60) -> str:
        return self.deployment.task_log(dag_id, run_id, task_id, lines)

    def diagnostics(self, lines: int = 40) -> str:
        return self.deployment.diagnostics(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # A failed test that used the deployment keeps its Airflow home and prints the component logs at teardown.
    outcome = yield
    if outcome.failed and "airflow_env" in getattr(item, "fixturenames", ()):
        item.session.stash[_FAILED] = True
    return outcome


def _sigterm_to_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def airflow_env(request, order_services):
    """A running Airflow deployment (see the module docstring); torn down at session end."""
    # A TERM (e.g. CI's timeout) should still run the teardown below.
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    if previous_sigterm in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _sigterm_to_keyboard_interrupt)

    t0 = time.monotonic()
    database = PostgresDatabase()
    database.check_reachable()
    database.drop_stale()

    home = REPO_ROOT / ".e2e" / database.name
    dags_folder = Path(os.environ.get("ORDER_E2E_DAGS_FOLDER") or REPO_ROOT / "dags")
    deployment = AirflowDeployment(
        home,
        database.url,
        dags_folder=dags_folder,
        connections=connections(order_services),
        extra_env={**read_env_file(DEPLOY_ENV_FILE), **E2E_DEPLOYMENT_SETTINGS},
    )
    env = AirflowEnv(deployment=deployment, client=deployment.client, database=database)
    try:
        database.create()
        deployment.bring_up()
        env.client = deployment.client
        env.timings.update(deployment.timings)
        env.timings["bring_up_s"] = time.monotonic() - t0
        report(
            request.config,
            f"Airflow up in {env.timings['bring_up_s']:.1f}s (db migrate {env.timings['db_migrate_s']:.1f}s, "
            f"components healthy after {env.timings['ready_s']:.1f}s) at {deployment.base_url}, home {home}",
        )
        yield env
    except BaseException:
        request.session.stash[_FAILED] = True  # bring-up failed: the finally below prints the logs
        raise
    finally:
        failed = request.session.stash.get(_FAILED, False)
        if failed:
            sys.stderr.write(
                f"\n[e2e] failure: tails of the Airflow component logs\n{deployment.diagnostics(60)}\n"
            )
        killed = deployment.stop()
        if killed:
            sys.stderr.write(f"\n[e2e] had to SIGKILL leftover processes: {killed}\n")
        database.drop()
        if failed or os.environ.get("ORDER_E2E_KEEP"):
            sys.stderr.write(f"\n[e2e] AIRFLOW_HOME with all logs kept at {home}\n")
        else:
            shutil.rmtree(home, ignore_errors=True)
        if previous_sigterm in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="session")
def airflow_client(airflow_env) -> AirflowClient:
    return airflow_env.client


__all__ = ["AirflowEnv", "HarnessError", "airflow_client", "airflow_env", "client"]


ORDER_DAG_ID = "order_processing"


@pytest.fixture(scope="module")
def client(airflow_env, order_services):
    """The REST client, with ``order_processing`` parsed and unpaused and no fault left over."""
    order_services.clear_faults()
    airflow_env.client.wait_for_dag(ORDER_DAG_ID, timeout=120)
    airflow_env.client.unpause(ORDER_DAG_ID)
    return airflow_env.client
