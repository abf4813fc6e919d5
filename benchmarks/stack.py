"""The stack one benchmark runs on: the reference services, a PostgreSQL database and an Airflow, up and down."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from order_services.testing import OrderServicesServer, start_order_services

from benchmarks.common import BenchmarkError, say
from benchmarks.settings import (
    API_KEY,
    BENCH_BASE_SETTINGS,
    DAG_IDS,
    DEPLOY_ENV_FILE,
    LONG_TASK,
    LONG_TASK_DAG_FILE,
    NOOP_DAG_FILE,
    ORDER_DAG_FILE,
    Settings,
)
from harness.common import REPO_ROOT, read_env_file
from harness.deployment import AirflowDeployment
from harness.postgres import PostgresDatabase
from harness.services import SERVICES, connections

#: The editable sources every task imports. `make venv` compiles them once, but a file edited since
#: then has no up-to-date .pyc, and with PYTHONDONTWRITEBYTECODE set (as on this machine) every task
#: process would compile it from source again: a cost of the checkout, not of the DAG.
BYTECODE_SOURCES = (REPO_ROOT / "airflow_order_provider", REPO_ROOT / "services" / "order_services")


def compile_bytecode(folders: Iterable[Path]) -> None:
    """Write the .pyc files of ``folders`` (both DAG files' too, alike), as an installed package has them."""
    import compileall

    for folder in folders:
        if folder.is_dir() and not compileall.compile_dir(str(folder), quiet=1):
            raise BenchmarkError(f"could not compile {folder}")



class Stack:
    """Services, database and Airflow for one benchmark; :meth:`down` undoes whatever :meth:`up` did."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = Path(tempfile.mkdtemp(prefix="order-bench-"))
        self.dags_folder = self.home / "dags"
        self.database = PostgresDatabase(prefix="order_bench")
        self.services: OrderServicesServer | None = None
        self.deployment: AirflowDeployment | None = None
        self.env_settings: dict[str, str] = {}

    def up(self) -> None:
        t0 = time.monotonic()
        self.dags_folder.mkdir(parents=True)
        # Copies, not links: the files as they are now, whatever is edited during the run.
        shutil.copy2(ORDER_DAG_FILE, self.dags_folder / ORDER_DAG_FILE.name)
        shutil.copy2(NOOP_DAG_FILE, self.dags_folder / NOOP_DAG_FILE.name)
        if self.settings.long_task_s and "P2" in self.settings.only:
            shutil.copy2(LONG_TASK_DAG_FILE, self.dags_folder / LONG_TASK_DAG_FILE.name)
        compile_bytecode([self.dags_folder, *BYTECODE_SOURCES])

        services_dir = self.home / "order-services"
        services_dir.mkdir()
        self.services = start_order_services(
            services_dir / "order-services.db", api_key=API_KEY, dispatch_delay=0,
            initial_stock=10_000_000, log_path=services_dir / "order-services.log",
        )
        say(f"order services at {self.services.base_url}")

        self.database.check_reachable()
        self.database.drop_stale()
        self.env_settings = {**BENCH_BASE_SETTINGS, **read_env_file(DEPLOY_ENV_FILE)}
        if self.settings.profile:
            self.env_settings.update(read_env_file(self.settings.profile))
        self._size_active_runs()

        self.deployment = AirflowDeployment(
            self.home / "airflow",
            self.database.url,
            dags_folder=self.dags_folder,
            connections=connections(self.services),
            extra_env=self.env_settings,
        )
        self.database.create()
        self.deployment.bring_up()
        client = self.deployment.client
        for dag_id in DAG_IDS + ((LONG_TASK,) if self.settings.long_task_s and "P2" in self.settings.only else ()):
            client.wait_for_dag(dag_id, timeout=300)
            client.unpause(dag_id)
        slots = self.settings.pool_slots
        if slots is None:
            slots = self.executor_parallelism()
        if slots:
            # The services' pools sized to the executor instead of the policy table's 5/10/3/2 (the
            # services' minimum instances, a deliberate throttle the no-op DAG does not have): what is
            # left is the orchestration's own cost. --pool-slots 0 measures with the table's.
            for service in SERVICES:
                pool = client.get(f"/api/v2/pools/order_{service}")
                client.request("PATCH", f"/api/v2/pools/order_{service}", expected=(200,),
                               params={"update_mask": "slots"},
                               json={"name": pool["name"], "slots": slots,
                                     "include_deferred": pool.get("include_deferred", False)})
            self.env_settings["pool slots of order_<service>"] = str(slots)
        else:
            self.env_settings["pool slots of order_<service>"] = "the policy table's (5/10/3/2)"
        say(f"Airflow up in {time.monotonic() - t0:.0f}s at {self.deployment.base_url} (home {self.home}); "
            f"both DAGs parsed and unpaused")

    def environment(self) -> dict[str, str]:
        assert self.deployment is not None
        return self.deployment.environment()

    def _size_active_runs(self) -> None:
        """
        Size ``[core] max_active_runs_per_dag`` for the orders P3 keeps open, as
        deploy/airflow-order.env tells a deployment to (peak open orders): above it, a new order
        would wait in ``queued`` until a parked one ends, which is not what P3 measures.
        """
        key = "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG"
        needed = self.settings.parked + 100 if "P3" in self.settings.only else 0
        if needed > int(self.env_settings.get(key, "16")):
            say(f"{key}={needed}: {self.settings.parked} orders parked (the env file's {self.env_settings.get(key)})")
            self.env_settings[key] = str(needed)

    def executor_parallelism(self) -> int:
        """The deployment's ``[core] parallelism`` (Airflow's default 32): the LocalExecutor's slots."""
        return int(self.environment().get("AIRFLOW__CORE__PARALLELISM", "32"))

    def down(self, failed: bool, interrupted: bool = False) -> None:
        if self.deployment is not None:
            if failed and not interrupted:
                sys.stderr.write(f"\n[bench] component log tails:\n{self.deployment.diagnostics(30)}\n")
            killed = self.deployment.stop()
            if killed:
                say(f"had to SIGKILL leftover processes: {killed}")
        if self.services is not None:
            self.services.stop()
        with contextlib.suppress(Exception):
            self.database.drop()
        if failed or self.settings.keep:
            say(f"AIRFLOW_HOME with all logs kept at {self.home}")
        else:
            shutil.rmtree(self.home, ignore_errors=True)
