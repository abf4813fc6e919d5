"""
An order in flight survives the deployment's upgrade of Airflow (``make compat-upgrade``,
``scripts/compat_upgrade.sh``, which installs the venv and runs this).

In a venv with the provider's built wheel beside ``apache-airflow[postgres]==FROM`` (3.2.2), on a
PostgreSQL database of its own, with the reference services:

1. a real Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor) on FROM, set up
   with the project's setup command (``airflow orders setup``);
2. one order above the approval threshold, triggered through Airflow's REST API, until it is parked
   in Required Actions (listed by ``GET .../hitlDetails``, not answered; on 3.2 the task waits
   deferred on the triggerer); the payment is taken, nothing else;
3. Airflow stopped; the same venv upgraded to TO (3.3.2) with the provider wheel unchanged
   (``bash scripts/compat_lib.sh install``); ``airflow db migrate``; Airflow started again;
4. the request still listed through TO's REST API, answered there (*Approve*); the order completes
   with its ledger exact: one charge, one reservation, one shipment, one email, nothing refunded.

Then it stops what it started and drops its database (its AIRFLOW_HOME and logs are kept in
``.compat/upgrade-<db>`` after a failure). No step waits for a fixed time: each waits for what it
needs to see, with a generous limit. Run with the repository's ``.venv`` (the harness and the
services); the Airflow components run with the venv's Python::

    python -m tests.integration.upgrade --venv .compat/venv-upgrade --from 3.2.2 --to 3.3.2
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from harness import scenario
from harness.common import REPO_ROOT, HarnessError, read_env_file
from harness.deployment import AirflowDeployment
from harness.postgres import PostgresDatabase
from harness.scenario import installed, wait_until
from harness.services import connections

DAG_ID = "order_processing"
APPROVAL_TASK = "approve_order"
DEPLOY_ENV_FILE = REPO_ROOT / "deploy" / "airflow-order.env"
#: Above the approval threshold (100 000 minor units), as the approval tests order.
HIGH_VALUE = {"items": [{"sku": "SKU-GRAND-PIANO", "quantity": 1, "unit_price": 250_000}], "total_amount": 250_000}
PARKED = [("payment", "charge", "succeeded")]
#: Business time unscaled (the test suites scale it by 0.01): the approval waits 24 h, so that no
#: timeout of the order can fire however long the upgrade takes.
SETTINGS = {"AIRFLOW__ORDER_PROVIDER__TIME_SCALE": "1"}


def log(text: str) -> None:
    scenario.log("upgrade", text)


def pending_approval(client, run_id: str) -> dict | None:
    """The run's unanswered approval request, as Airflow's REST API lists it (None when there is none)."""
    for detail in client.hitl_details(DAG_ID, run_id):
        if detail["task_instance"]["task_id"] == APPROVAL_TASK and not detail["response_received"]:
            return detail
    return None


def run(venv: Path, version_from: str, version_to: str, keep: bool) -> dict[str, float]:
    from order_services.testing import start_order_services

    venv = venv.resolve()
    python = venv / "bin" / "python"
    timings: dict[str, float] = {}
    started = time.monotonic()
    database = PostgresDatabase(prefix="order_upgrade")
    database.check_reachable()
    database.drop_stale()
    home = REPO_ROOT / ".compat" / f"upgrade-{database.name}"
    home.mkdir(parents=True, exist_ok=True)
    # The harness's helpers import the provider (from this repository's .venv): its Airflow
    # configuration goes to a folder of this run, not ~/airflow.
    os.environ["AIRFLOW_HOME"] = str(home / "driver")
    from harness.orders import COMPLETED, an_order, ledger

    before = installed(python, home)
    if before["airflow"] != version_from or not before["file"].startswith(str(venv)):
        raise HarnessError(f"{venv} has Airflow {before['airflow']}, provider from {before['file']}")
    log(f"Airflow {before['airflow']}, provider {before['provider']} from {before['file']}")

    services = start_order_services(home / "order-services.db", api_key=secrets.token_urlsafe(16),
                                    log_path=home / "order-services.log")
    deployment = AirflowDeployment(
        home / "airflow", database.url, python=str(python),
        connections=connections(services),
        extra_env={**read_env_file(DEPLOY_ENV_FILE), **SETTINGS},
    )
    failed = True
    try:
        database.create()
        deployment.prepare()
        deployment.migrate(pools=False)
        setup = deployment.cli("orders", "setup")
        log("airflow orders setup:\n" + setup.strip())
        if "The deployment is ready for orders." not in setup:
            raise HarnessError(f"airflow orders setup did not get the deployment ready:\n{setup}")
        deployment.start()
        deployment.wait_ready()
        client = deployment.client
        client.wait_for_dag(DAG_ID, timeout=300)
        client.unpause(DAG_ID)
        timings["up_on_from_s"] = time.monotonic() - started

        order = an_order(**HIGH_VALUE)
        run_id = client.trigger(DAG_ID, order, run_id=f"upgrade-{order['order_id']}")
        t0 = time.monotonic()
        request = wait_until(lambda: pending_approval(client, run_id), f"{run_id}: the approval request", 300)
        state = client.task_states(DAG_ID, run_id)[APPROVAL_TASK]
        log(f"Airflow {version_from}: order {order['order_id']} parked in Required Actions"
            f" ({request['subject']!r}; {APPROVAL_TASK} {state}) after {time.monotonic() - t0:.1f}s")
        if state not in ("deferred", "awaiting_input"):
            raise HarnessError(f"{APPROVAL_TASK} is {state!r} while its request is pending")
        got = ledger(services, order["order_id"])
        if got != PARKED:
            raise HarnessError(f"ledger while parked: {got}, expected {PARKED}")

        t0 = time.monotonic()
        killed = deployment.stop()
        if killed:
            log(f"had to SIGKILL: {killed}")
        log(f"Airflow {version_from} stopped; upgrading {venv} to {version_to}, the provider wheel unchanged")
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "compat_lib.sh"), "install", str(venv), version_to,
                        "postgres"], check=True, timeout=900)
        after = installed(python, home)
        if after["airflow"] != version_to:
            raise HarnessError(f"after the upgrade: Airflow {after['airflow']}")
        if (after["provider"], after["record"]) != (before["provider"], before["record"]):
            raise HarnessError("the upgrade changed the installed provider")
        timings["upgrade_install_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        deployment.migrate(pools=False)
        timings["db_migrate_s"] = time.monotonic() - t0
        log(f"airflow db migrate to {version_to}: {timings['db_migrate_s']:.1f}s")
        deployment.start()
        deployment.wait_ready()
        client = deployment.client

        request = pending_approval(client, run_id)
        if request is None:
            raise HarnessError(f"after the upgrade the approval of {run_id} is no longer pending: "
                               f"{client.hitl_details(DAG_ID, run_id)}")
        log(f"Airflow {version_to}: the request is still pending ({APPROVAL_TASK} "
            f"{client.task_states(DAG_ID, run_id)[APPROVAL_TASK]}); approving it through the REST API")
        client.respond(DAG_ID, run_id, APPROVAL_TASK, ["Approve"])
        t0 = time.monotonic()
        state = client.wait_for_run(DAG_ID, run_id, timeout=600)
        timings["approved_to_done_s"] = time.monotonic() - t0
        got = ledger(services, order["order_id"])
        if state != "success" or got != COMPLETED:
            raise HarnessError(f"run {state}, ledger {got} (expected success, {COMPLETED})\n"
                               + deployment.describe_run(DAG_ID, run_id))
        approval = client.xcom(DAG_ID, run_id, APPROVAL_TASK)
        if approval.get("approved") is not True:
            raise HarnessError(f"{APPROVAL_TASK} pushed {approval}")
        log(f"Airflow {version_to}: order {order['order_id']} completed after its approval "
            f"({timings['approved_to_done_s']:.1f}s); ledger exact: {got}")
        failed = False
    finally:
        scenario.tear_down("upgrade", deployment, services, database, home, failed=failed, keep=keep)
    timings["total_s"] = time.monotonic() - started
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.upgrade", description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, required=True, help="a venv with the wheels and apache-airflow==FROM")
    parser.add_argument("--from", dest="version_from", default="3.2.2")
    parser.add_argument("--to", dest="version_to", default="3.3.2")
    parser.add_argument("--keep", action="store_true", help="keep the AIRFLOW_HOME and logs after a success")
    args = parser.parse_args(argv)
    try:
        timings = run(args.venv, args.version_from, args.version_to, args.keep)
    except (HarnessError, subprocess.CalledProcessError) as exc:
        log(f"FAILED: {exc}")
        return 1
    log("ok: an order parked in approval on Airflow {} completed after the upgrade to {}; {}".format(
        args.version_from, args.version_to, ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
