"""
``airflow orders setup`` on a fresh Airflow (its own SQLite metadata DB, Airflow's own CLI in a
subprocess): it creates the order pools from the policy table, updates their slots, and checks the
services' connections against the real reference services. ``GET /orders/health``'s check reads
the same state (:func:`airflow_order_provider.deployment.check`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_order_provider.version_compat import HAS_PROVIDER_CLI
from harness.services import SERVICES, connection_env
from tests.compat import needs_provider_cli

POOLS = {"order_payment": 5, "order_inventory": 10, "order_shipping": 3, "order_notification": 2}
CHECK = (
    "import json; from airflow.utils.session import create_session;"
    "from airflow_order_provider.deployment import check;"
    "s = create_session().__enter__(); print(json.dumps(check(s)))"
)


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("setup-airflow")
    env = environment(home)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=300)
    return home


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__", "AIRFLOW_HOME"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}", **extra)
    return env


def setup_command(*args: str) -> list[str]:
    """The setup command as a user runs it on this release: Airflow's CLI (3.2+), else the module."""
    if HAS_PROVIDER_CLI:
        return [sys.executable, "-m", "airflow", "orders", "setup", *args]
    return [sys.executable, "-m", "airflow_order_provider.cli", "setup", *args]


def run(home: Path, command: list[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=environment(home, **extra), capture_output=True, text=True, timeout=300)


def test_setup_creates_the_pools_updates_them_and_checks_the_connections(airflow_home, order_services):
    before = json.loads(run(airflow_home, [sys.executable, "-c", CHECK]).stdout.strip().splitlines()[-1])
    assert not before["ok"]
    assert {name for name, pool in before["pools"].items() if pool["slots"] is None} == set(POOLS)
    assert any("pool 'order_payment' does not exist" in problem for problem in before["problems"])
    assert any("connection 'order_payment_default'" in problem for problem in before["problems"])

    # No connection yet: the pools are created all the same, and the command fails naming each one.
    first = run(airflow_home, setup_command())
    assert first.returncode == 1, first.stderr[-2000:]
    for pool, slots in POOLS.items():
        assert f"pool {pool}: created with {slots} slots" in first.stdout
    for service in SERVICES:
        assert f"connection order_{service}_default ({service}): missing" in first.stdout
    assert "4 problem(s)" in first.stderr

    # The connections to the real services, and a deployment that sizes its payment pool.
    second = run(airflow_home, setup_command(), **connection_env(order_services),
                 AIRFLOW__ORDER_PROVIDER__POLICY_OVERRIDES='{"payment": {"pool_slots": 7}}')
    assert second.returncode == 0, second.stdout + second.stderr[-2000:]
    assert "pool order_payment: 5 -> 7 slots" in second.stdout
    assert "pool order_inventory: 10 slots (unchanged)" in second.stdout
    for service in SERVICES:
        assert f"connection order_{service}_default ({service}): ok" in second.stdout
    assert "The deployment is ready for orders." in second.stdout

    after = json.loads(run(airflow_home, [sys.executable, "-c", CHECK], **connection_env(order_services)).stdout
                       .strip().splitlines()[-1])
    assert after["ok"], after["problems"]
    assert after["pools"]["order_payment"] == {"slots": 7, "expected_slots": 5}


def test_connections_stored_in_the_metadata_database_are_checked(tmp_path_factory, order_services):
    """
    The README's way: ``airflow connections add`` stores the connections in the metadata database
    (not the environment). The setup command finds and tests them there, as the API server's health
    check does. (Outside a task, the task SDK of Airflow 3.2.2 and 3.3.2 looks connections up in the
    environment and the secrets backends only: a hook's own lookup said "The conn_id `order_payment_default` isn't
    defined", and the command failed with a traceback.)
    """
    home = tmp_path_factory.mktemp("setup-airflow-db-connections")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=environment(home), check=True,
                   capture_output=True, timeout=300)
    stored = home / "connections.json"
    stored.write_text(json.dumps({
        f"order_{service}_default": {"conn_type": "http", "host": order_services.host, "port": order_services.port,
                                     "password": order_services.api_key}
        for service in SERVICES
    }))
    imported = run(home, [sys.executable, "-m", "airflow", "connections", "import", str(stored)])
    assert imported.returncode == 0, imported.stderr[-2000:]

    out = run(home, setup_command())
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    for service in SERVICES:
        assert f"connection order_{service}_default ({service}): ok: Connected to the {service} service" in out.stdout
    assert "The deployment is ready for orders." in out.stdout


def test_a_wrong_api_key_fails_the_check(airflow_home, order_services):
    wrong = {name: url.replace(f":{order_services.api_key}@", ":wrong-key@")
             for name, url in connection_env(order_services).items()}
    out = run(airflow_home, setup_command(), **wrong)
    assert out.returncode == 1
    assert "connection order_payment_default (payment): FAILED" in out.stdout


@needs_provider_cli
def test_airflow_cli_lists_the_orders_command(airflow_home):
    shown = run(airflow_home, [sys.executable, "-m", "airflow", "orders", "--help"])
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "setup" in shown.stdout
