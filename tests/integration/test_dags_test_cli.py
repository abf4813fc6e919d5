"""
``airflow dags test order_processing -c '<order>'``, as a user types it, exits 0 on a successful order.

Airflow 3.3.2's ``dag.test()`` crashes at the end of a successful run of a DAG with a
``DeadlineAlert`` (it looks the alert up by its serialized form); the provider works around it
(:func:`airflow_order_provider.deadlines.install_dag_test_deadline_fix`). The CLI runs in its own
``AIRFLOW_HOME`` on SQLite, with the order pools imported as a deployment would, against the
session's reference services; the ledger shows the order went through once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.orders import an_order, ledger
from harness.services import connection_env
from tests.compat import needs_dags_test_with_deadline

pytestmark = [pytest.mark.integration, needs_dags_test_with_deadline]

HAPPY_LEDGER = [
    ("payment", "charge", "succeeded"),
    ("inventory", "reserve", "succeeded"),
    ("shipping", "schedule", "succeeded"),
    ("notification", "email", "succeeded"),
]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory, order_services):
    home = tmp_path_factory.mktemp("dags-test-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(os.path.join(os.path.dirname(__file__), "..", "..", "dags")),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__ORDER_PROVIDER__TIME_SCALE": "0.01",
            # 5 h x 0.01 = 180 s of processing: `airflow dags test` starts slowly on a loaded machine
            "AIRFLOW__ORDER_PROVIDER__WORKFLOW_TIMEOUT": "18000",
        }
    )
    env.update(connection_env(order_services))

    def airflow(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=env, cwd=home, capture_output=True, text=True,
            timeout=timeout, start_new_session=True,
        )

    migrated = airflow("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    pools = subprocess.run(
        [sys.executable, "-m", "airflow_order_provider.pools"], env=env, capture_output=True, text=True, check=True
    )
    (home / "order-pools.json").write_text(pools.stdout)
    imported = airflow("pools", "import", str(home / "order-pools.json"))
    assert imported.returncode == 0, imported.stderr[-3000:]
    return airflow


def test_airflow_dags_test_exits_0_on_a_successful_order(cli_env, order_services):
    order = an_order()
    result = cli_env("dags", "test", "order_processing", "-c", json.dumps(order))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "'dict' object has no attribute 'hex'" not in output
    assert "successful" in output and "DagRun Finished" in output, output[-3000:]
    assert ledger(order_services, order["order_id"]) == HAPPY_LEDGER
