"""
The README's install steps, followed on a plain Airflow (``make compat-install``,
``scripts/compat_install_walkthrough.sh``, which creates the venv and runs this).

The venv holds a plain ``apache-airflow[postgres]==VERSION`` and pip, nothing of this project: the
deployment a user already has. Its Airflow (api-server, scheduler, dag-processor, triggerer;
LocalExecutor) runs on a PostgreSQL database of its own, beside the reference services. The
README's commands (section "Install into your Airflow", taken from README.md itself, so that the
check fails when the README changes under it) are run in a shell with the deployment's
environment, in this order:

1. build the wheel, ``pip install`` it beside the running Airflow's version, ``airflow providers list``;
2. copy the DAG file into the DAGs folder;
3. the four connections;
5. (before step 4, as a user who skipped it) start the components, unpause the DAG, start an
   order through the order API: it waits, and ``GET /orders/health`` and the order's
   ``waiting_for`` say why (the pools that do not exist, and the setup command);
4. ``airflow orders setup``: the order goes on and completes, with its ledger exact (one charge,
   one reservation, one shipment, one email).

Nothing waits for a fixed time. The database is dropped and every process stopped at the end; the
AIRFLOW_HOME and logs stay in ``.compat/install-<db>`` after a failure.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness import scenario
from harness.common import REPO_ROOT, HarnessError
from harness.deployment import AirflowDeployment
from harness.postgres import PostgresDatabase
from harness.scenario import installed, wait_until

DAG_ID = "order_processing"
README = REPO_ROOT / "README.md"
SECTION = "## Install into your Airflow"
#: The README's commands, in its words; API-KEY and 127.0.0.1:8700 stand for the services' key and address.
STEP_1 = [
    "uv build --wheel",
    'pip install dist/airflow_order_provider-*.whl "apache-airflow==$(airflow version)"',
    "airflow providers list | grep airflow-order-provider",
]
STEP_2 = ['cp dags/order_processing.py "$(airflow config get-value core dags_folder)"']
STEP_3 = [
    "for service in payment inventory shipping notification; do\n"
    "  airflow connections add \"order_${service}_default\" --conn-uri 'http://:API-KEY@127.0.0.1:8700'\n"
    "done",
]
STEP_4 = ["airflow orders setup"]
STEP_5 = ["airflow dags unpause order_processing"]


def log(text: str) -> None:
    scenario.log("install", text)


def readme_section() -> str:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def check_readme() -> None:
    """Every command this walk-through runs is written in the README's install section, as run here."""
    def lines(text: str) -> str:  # a command's lines as written, whatever the list's indentation
        return "\n".join(line.strip() for line in text.splitlines())

    section = lines(readme_section())
    missing = [cmd for cmd in STEP_1 + STEP_2 + STEP_3 + STEP_4 + STEP_5 if lines(cmd) not in section]
    if missing:
        raise HarnessError("the README's install section no longer says:\n" + "\n".join(missing))


def shell(deployment: AirflowDeployment, command: str, cwd: Path, timeout: float = 900.0,
          shown: str | None = None) -> str:
    """Run ``command`` as a user types it, in bash, with the deployment's environment; its output."""
    log(f"$ {shown or command}")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=deployment.environment(),
                         capture_output=True, text=True, timeout=timeout, start_new_session=True)
    text = (out.stdout + out.stderr).strip()
    if text:
        print(re.sub(r"^", "    ", text[-4000:], flags=re.M), flush=True)
    if out.returncode != 0:
        raise HarnessError(f"`{command}` exited with {out.returncode}")
    return out.stdout


def run(venv: Path, keep: bool) -> dict[str, float]:
    from order_services.testing import start_order_services

    check_readme()
    venv = venv.resolve()
    python = venv / "bin" / "python"
    timings: dict[str, float] = {}
    started = time.monotonic()
    database = PostgresDatabase(prefix="order_install")
    database.check_reachable()
    database.drop_stale()
    home = REPO_ROOT / ".compat" / f"install-{database.name}"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home / "driver")  # the helpers below import the provider
    from harness.orders import COMPLETED, an_order, ledger

    # A copy of the repository's sources: the walk-through builds its wheel there (dist/).
    source = home / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".compat", ".e2e", ".demo", "dist", "build", "__pycache__", "*.egg-info", ".*_cache"))

    services = start_order_services(home / "order-services.db", api_key=secrets.token_urlsafe(16),
                                    log_path=home / "order-services.log")
    deployment = AirflowDeployment(home / "airflow", database.url, python=str(python),
                                   dags_folder=home / "airflow" / "dags")
    # The shell finds uv (step 1) after the venv's own commands.
    uv_dir = str(REPO_ROOT / ".venv" / "bin")
    base_env = deployment.environment

    def environment() -> dict[str, str]:
        env = base_env()
        env["PATH"] = env["PATH"] + os.pathsep + uv_dir
        return env

    deployment.environment = environment  # type: ignore[method-assign]
    failed = True
    try:
        database.create()
        deployment.prepare()
        deployment.dags_folder.mkdir(parents=True, exist_ok=True)
        deployment.migrate(pools=False)
        plain = subprocess.run(
            [str(python), "-c", "import importlib.util as u, airflow; print(airflow.__version__,"
             " u.find_spec('airflow_order_provider') is not None)"],
            capture_output=True, text=True, cwd=home, env=deployment.environment(), timeout=300, check=True,
        ).stdout.split()
        if plain[-1] != "False":
            raise HarnessError(f"{venv} is not a plain Airflow: the provider is already installed")
        log(f"a plain Airflow {plain[-2]} in {venv}")

        # 1. the wheel beside the Airflow the deployment runs
        for command in STEP_1:
            shell(deployment, command, source)
        have = installed(python, home)
        if not have["file"].startswith(str(venv)):
            raise HarnessError(f"the provider is imported from {have['file']}")
        log(f"Airflow {have['airflow']}, provider {have['provider']} installed")
        # 2. the DAG file; 3. the connections
        shell(deployment, STEP_2[0], source)
        address = f"{services.host}:{services.port}"
        shell(deployment, STEP_3[0].replace("API-KEY", services.api_key).replace("127.0.0.1:8700", address),
              source, shown=STEP_3[0].replace("127.0.0.1:8700", address))
        # 5. without step 4: the components, the DAG unpaused, an order
        deployment.start()
        deployment.wait_ready()
        client = deployment.client
        client.wait_for_dag(DAG_ID, timeout=300)
        shell(deployment, STEP_5[0], source)
        timings["installed_and_up_s"] = time.monotonic() - started
        order = an_order()
        client.request("POST", "/orders", json=order, expected=(201,))
        health = client.get("/orders/health")
        log(f"GET /orders/health: {health['status']}: {health['problems']}")
        if health["status"] != "degraded" or not all(
            any(f"pool {pool!r} does not exist" in p for p in health["problems"])
            for pool in ("order_payment", "order_inventory", "order_shipping", "order_notification")
        ):
            raise HarnessError(f"the health answer does not name the missing pools: {health}")
        waiting = wait_until(lambda: client.get(f"/orders/{order['order_id']}")["waiting_for"],
                             "the order names the pool it waits for", 300)
        log(f"GET /orders/{order['order_id']}: waiting_for {waiting}")
        expected = ("process_payment waits for pool 'order_payment', which does not exist: it is never"
                    " scheduled (run `airflow orders setup`)")
        if waiting != [expected]:
            raise HarnessError(f"waiting_for: {waiting}")
        if ledger(services, order["order_id"]) != []:
            raise HarnessError(f"the order moved money before its pools existed: {ledger(services, order['order_id'])}")
        # 4. the setup command: the waiting order goes on
        output = shell(deployment, STEP_4[0], source)
        if "The deployment is ready for orders." not in output:
            raise HarnessError("airflow orders setup did not get the deployment ready")
        t0 = time.monotonic()
        state = client.wait_for_run(DAG_ID, order["order_id"], timeout=600)
        timings["setup_to_done_s"] = time.monotonic() - t0
        detail = client.get(f"/orders/{order['order_id']}")
        got = ledger(services, order["order_id"])
        if (state, detail["status"], detail["waiting_for"], got) != ("success", "completed", [], COMPLETED):
            raise HarnessError(f"run {state}, status {detail['status']}, waiting_for {detail['waiting_for']},"
                               f" ledger {got}\n" + deployment.describe_run(DAG_ID, order["order_id"]))
        if client.get("/orders/health")["status"] != "ok":
            raise HarnessError(f"health after setup: {client.get('/orders/health')}")
        log(f"order {order['order_id']} completed {timings['setup_to_done_s']:.1f}s after the setup command;"
            f" ledger exact: {got}; GET /orders/health: ok")
        failed = False
    finally:
        scenario.tear_down("install", deployment, services, database, home, failed=failed, keep=keep)
    timings["total_s"] = time.monotonic() - started
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.install_walkthrough",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, required=True, help="a venv with a plain apache-airflow and pip")
    parser.add_argument("--keep", action="store_true", help="keep the AIRFLOW_HOME and logs after a success")
    args = parser.parse_args(argv)
    try:
        timings = run(args.venv, args.keep)
    except (HarnessError, subprocess.TimeoutExpired) as exc:
        log(f"FAILED: {exc}")
        return 1
    log("ok: the README's install steps on a plain Airflow: an order waited for the missing pools, named"
        " them, and completed after `airflow orders setup`; "
        + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
