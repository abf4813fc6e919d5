"""
Benchmarks of issue 11: the order DAG against a no-op DAG of the same shape, on one real Airflow.

    python -m benchmarks.run                      # make bench: full run, writes docs/benchmarks.*
    python -m benchmarks.run --profile deploy/low-latency.env   # docs/benchmarks-low-latency.*
    python -m benchmarks.run --smoke              # make bench-smoke: tiny numbers, a temp dir, for CI
    python -m benchmarks.run --only P1,P4 --sequential 3

Brings up, on 127.0.0.1 and with the end-to-end harness of ``tests/integration/harness`` (not a
copy of it): the reference order services (``order_services.testing.start_order_services``), a
fresh PostgreSQL database, and an Airflow 3 (api-server, scheduler, dag-processor, triggerer;
LocalExecutor) whose DAGs folder holds copies of ``dags/order_processing.py`` and of
``benchmarks/dags/order_shape_noop.py`` (the same 14 tasks, every one a no-op PythonOperator).

Configuration, lowest precedence first: the harness's own settings, ``[order_provider] time_scale``
= 1 (a deployment's real timeouts: the harness shrinks them 100x for tests, which would let a
loaded machine time orders out), ``deploy/airflow-order.env``, then ``--profile FILE``. Both DAGs
run on the same Airflow with the same settings; the test suite's E2E_DEPLOYMENT_SETTINGS are not applied.

Measurements (each DAG alternately, to share the machine's noise):

* P1 ``--sequential K``: K runs one at a time per DAG; latency = ``end_date - queued_at`` of the
  run (REST API). Ratio of the medians, order / no-op; goal <= 1.05.
* P2 ``--burst N``: N runs triggered at once (threads) per DAG, one DAG after the other; drain
  rate = N / (last end_date - first queued_at) in runs/min. Ratio order / no-op; goal >= 0.9.
  The services' pools are sized to the executor's parallelism, so that only the orchestration's
  cost is measured, not the policy table's throttle (5/10/3/2 slots); ``--pool-slots 0`` keeps it.
  P1 and P2 are repeated ``--rounds R`` times; the reported value is the median of the rounds.
* P3 ``--parked M``: M orders above the approval threshold wait in ``approve_order`` (Required
  Actions); task instances ``running`` among their runs are counted (goal 0: no worker slot), the
  pools' slots are reported; then ``--parked-sequential`` (3) runs one at a time per DAG with
  them parked. Ratio of the order DAG's median latency with them parked to P1's without; goal
  <= 1.2. They stay parked (the teardown drops the database).
* P4: parse time of each DAG file: Airflow's own figure, the DAG's ``last_parse_duration`` (the
  DAG processor's whole processing of the file, as the UI shows it; 7 parses per file), ratio of
  medians, goal <= 1.5; beside it, the in-process part alone (``benchmarks/parse_probe.py``, what
  the parsing child does after the fork: executing the file and serializing its DAG; a fresh
  interpreter per measurement, 7 per file alternately) with its breakdown.
* P5: ``PaymentHook.get_charge`` against the same ``GET`` with ``requests`` on loopback
  (``benchmarks/hook_probe.py``, 200 calls each, interleaved); overhead of the medians; goal <= 5 ms.
  The same GET with one ``httpx.Client`` is timed beside it (reported, not the baseline).

Every happy order must end ``success`` with exactly one charge, reservation, shipment and email
in the services' audit ledger; every no-op run must end ``success``. A run that does not makes
that measurement INVALID and the exit status 1 (the measurement goes on). Exit status 0 means
every measurement was valid, not that the goals are met (``--fail-on-goals`` for that).

Output: a table on stdout, and ``docs/benchmarks[-PROFILE].md`` (with date, command, machine,
load, Airflow version, profile), ``.json`` (raw numbers) and ``.png`` (matplotlib chart).
Every process started runs in its own process group and is stopped by its id at the end, also
on Ctrl-C or SIGTERM; the database is dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from order_services.testing import OrderServicesServer, new_key, start_order_services

from benchmarks import cpu, slots
from harness.client import AirflowClient
from harness.common import REPO_ROOT, HarnessError, read_env_file, tail
from harness.deployment import AirflowDeployment
from harness.postgres import PostgresDatabase
from harness.processes import run_logged

BENCH_DIR = Path(__file__).resolve().parent
ORDER_DAG_FILE = REPO_ROOT / "dags" / "order_processing.py"
NOOP_DAG_FILE = BENCH_DIR / "dags" / "order_shape_noop.py"
LONG_TASK_DAG_FILE = BENCH_DIR / "dags" / "slot_long_task.py"
LONG_TASK = "bench_long_task"
DEPLOY_ENV_FILE = REPO_ROOT / "deploy" / "airflow-order.env"
DOCS_DIR = REPO_ROOT / "docs"
ORDER, NOOP = "order_processing", "order_shape_noop"
DAG_IDS = (ORDER, NOOP)
SERVICES = ("payment", "inventory", "shipping", "notification")
API_KEY = "bench-key"
#: The approval threshold's default is 100000 (minor units); parked orders are well above it.
PARKED_ITEMS = [{"sku": "SKU-GRAND-PIANO", "quantity": 1, "unit_price": 250_000}]
PARKED_STATES = ("awaiting_input", "deferred")
ALL_PS = ("P1", "P2", "P3", "P4", "P5")

GOALS = {
    "P1": ("<=", 1.05, "happy-order latency / no-op latency (median of rounds)"),
    "P2": (">=", 0.9, "burst drain rate, order / no-op (median of rounds)"),
    "P3": ("<=", 1.2, "order latency with M parked / without (P1); parked hold no running task"),
    "P4": ("<=", 1.5, "parse time of dags/order_processing.py / no-op DAG file"),
    "P5": ("<=", 5.0, "hook call - raw request, ms (medians)"),
}

#: What the benchmark sets on top of the harness's settings, before deploy/airflow-order.env and
#: the profile: a deployment's real business times (the harness's 0.01 is for tests: a 36 s
#: workflow timeout and 5 s step timeouts that a burst on a loaded machine would run into).
BENCH_BASE_SETTINGS = {"AIRFLOW__ORDER_PROVIDER__TIME_SCALE": "1"}
#: The supervisor's heartbeat interval, which also bounds how long a finished task can hold its
#: slot (docs/slot-release.md); P2 also drains with Airflow's default beside the shipped value.
HEARTBEAT_INTERVAL = "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"
AIRFLOW_DEFAULT_HEARTBEAT_INTERVAL = "5"

#: P3's variants, measured one after the other with the same orders parked: each restarts the
#: components it changes (the API server reads [order_provider] nudge_runs at start, the scheduler
#: its loop settings) on top of the run's settings; "shipped" is the run's settings as they are.
NUDGE_RUNS = "AIRFLOW__ORDER_PROVIDER__NUDGE_RUNS"
P3_VARIANTS: dict[str, dict[str, dict[str, str]]] = {
    "shipped": {},
    "no-nudge": {"api-server": {NUDGE_RUNS: "False"}},
    "batch4-idle0.1": {"scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "4",
                                     "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"}},
    "no-nudge-batch4-idle0.1": {"api-server": {NUDGE_RUNS: "False"},
                                "scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "4",
                                              "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"}},
    "batch512": {"scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "512"}},
}


def _load_rush():
    """scripts/rush.py (not a package): its valid order and the ledger a happy order leaves."""
    spec = importlib.util.spec_from_file_location("_order_rush", REPO_ROOT / "scripts" / "rush.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUSH = _load_rush()
EXPECTED_LEDGER = Counter(RUSH.EXPECTED_LEDGER)


class BenchmarkError(RuntimeError):
    pass


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ------------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------------


@dataclass
class Settings:
    sequential: int = 6
    burst: int = 100
    parked: int = 500
    parked_sequential: int = 3
    rounds: int = 3
    parse_processes: int = 7
    hook_calls: int = 200
    only: tuple[str, ...] = ALL_PS
    profile: Path | None = None
    pool_slots: int | None = None
    smoke: bool = False
    out_dir: Path | None = DOCS_DIR
    keep: bool = False
    warmup: int = 1
    default_interval: bool = True
    p3_variants: tuple[str, ...] = ("shipped", "no-nudge")
    long_task_s: int = 60
    fail_on_goals: bool = False
    command: str = ""

    @property
    def suffix(self) -> str:
        pools = "" if self.pool_slots is None else "-tablepools" if self.pool_slots == 0 else f"-pools{self.pool_slots}"
        return (f"-{self.profile.stem}" if self.profile else "") + pools

    @property
    def profile_name(self) -> str:
        return self.profile.stem if self.profile else "default (deploy/airflow-order.env)"


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=None, help="K runs one at a time per DAG (P1, P3); 6")
    parser.add_argument("--burst", type=int, default=None, help="N runs at once per DAG (P2); 100")
    parser.add_argument("--parked", type=int, default=None, help="M orders parked in approval (P3); 500")
    parser.add_argument("--parked-sequential", type=int, default=None,
                        help="runs one at a time per DAG with them parked (P3); 3")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of P1 and P2; the median is reported; 3")
    parser.add_argument("--parse-processes", type=int, default=None, help="fresh processes per DAG file (P4); 7")
    parser.add_argument("--hook-calls", type=int, default=None, help="calls of each kind (P5); 200")
    parser.add_argument("--warmup", type=int, default=None, help="runs per DAG before measuring, not counted; 1")
    parser.add_argument("--no-default-interval", action="store_true",
                        help="P2: skip the extra bursts with Airflow's default [workers] min_heartbeat_interval")
    parser.add_argument("--long-task", type=int, default=None,
                        help="P2: seconds of a task run beside each order burst (heartbeat cost); 0 skips; 60")
    parser.add_argument("--p3-variants", default=None,
                        help=f"P3: comma-separated settings to measure with the same orders parked, of "
                             f"{','.join(P3_VARIANTS)}; shipped,no-nudge")
    parser.add_argument("--only", default=None, help="comma-separated subset of P1,P2,P3,P4,P5")
    parser.add_argument("--pool-slots", type=int, default=None,
                        help="size the order_<service> pools to this many slots; 0 keeps the policy table's "
                             "5/10/3/2 (default: the executor's parallelism, so that they do not bind)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="env file of Airflow settings loaded on top of deploy/airflow-order.env")
    parser.add_argument("--smoke", action="store_true",
                        help="K=1 N=3 M=30, one round, fewer parses and calls; writes to a temp dir (CI)")
    parser.add_argument("--out-dir", type=Path, default=None, help="where to write the report (default docs/)")
    parser.add_argument("--keep", action="store_true", help="keep the AIRFLOW_HOME (logs) afterwards")
    parser.add_argument("--fail-on-goals", action="store_true", help="exit 2 when a goal is missed")
    args = parser.parse_args(argv)

    s = Settings()
    if args.smoke:
        # P3 with 30 parked: enough open runs to exceed the scheduler's batch of 20 per loop.
        s.sequential, s.burst, s.parked, s.rounds, s.parse_processes, s.hook_calls = 1, 3, 30, 1, 2, 30
        s.parked_sequential = 1
        s.long_task_s = 0
        s.smoke = True
    for name in ("sequential", "burst", "parked", "parked_sequential", "rounds", "parse_processes", "hook_calls",
                 "warmup"):
        value = getattr(args, name)
        if value is not None:
            if value < (0 if name == "warmup" else 1):
                parser.error(f"--{name.replace('_', '-')} must be positive")
            setattr(s, name, value)
    if args.only:
        wanted = tuple(p.strip().upper() for p in args.only.split(",") if p.strip())
        unknown = [p for p in wanted if p not in ALL_PS]
        if unknown:
            parser.error(f"--only: unknown {unknown}; choose from {','.join(ALL_PS)}")
        s.only = tuple(p for p in ALL_PS if p in wanted)
    if args.profile:
        s.profile = args.profile if args.profile.is_absolute() else Path.cwd() / args.profile
        if not s.profile.is_file():
            parser.error(f"--profile {args.profile}: no such file")
    if args.out_dir:
        s.out_dir = args.out_dir.resolve()
    elif s.smoke:
        s.out_dir = None  # a temp dir, made when the report is written
    s.keep = args.keep
    s.default_interval = not args.no_default_interval
    if args.p3_variants:
        wanted = tuple(v.strip() for v in args.p3_variants.split(",") if v.strip())
        unknown = [v for v in wanted if v not in P3_VARIANTS]
        if unknown:
            parser.error(f"--p3-variants: unknown {unknown}; choose from {','.join(P3_VARIANTS)}")
        s.p3_variants = wanted
    if args.long_task is not None:
        if args.long_task < 0:
            parser.error("--long-task must be 0 or more")
        s.long_task_s = args.long_task
    s.pool_slots = args.pool_slots
    s.fail_on_goals = args.fail_on_goals
    s.command = " ".join(shlex.quote(a) for a in ["python", "-m", "benchmarks.run", *(argv if argv is not None else sys.argv[1:])])
    return s


# ------------------------------------------------------------------------------------------------
# The stack
# ------------------------------------------------------------------------------------------------


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


def connection_uri(server: OrderServicesServer) -> str:
    return f"http://:{server.api_key}@{server.host}:{server.port}"


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
        uri = connection_uri(self.services)
        self.deployment = AirflowDeployment(
            self.home / "airflow",
            self.database.url,
            dags_folder=self.dags_folder,
            connections={f"order_{service}_default": uri for service in SERVICES},
            extra_env=self.env_settings,
        )
        self.database.create()
        self.deployment.prepare()
        self.deployment.migrate()
        self.deployment.start()
        self.deployment.wait_ready()
        client = self.deployment.client
        for dag_id in DAG_IDS + ((LONG_TASK,) if self.settings.long_task_s and "P2" in self.settings.only else ()):
            client.wait_for_dag(dag_id, timeout=300)
            client.unpause(dag_id)
        slots = self.settings.pool_slots
        if slots is None:
            slots = self.executor_parallelism()
        if slots:
            # The services' pools sized to the executor instead of the policy table's 5/10/3/2 (the
            # seed's minimum instances, a deliberate throttle the no-op DAG does not have): what is
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


# ------------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------------


def happy_order(order_id: str) -> dict[str, Any]:
    order = RUSH.an_order(1, "x")  # a valid order below the approval threshold (scripts/rush.py)
    order["order_id"] = order_id
    return order


def parked_order(order_id: str) -> dict[str, Any]:
    order = happy_order(order_id)
    order["items"] = [dict(item) for item in PARKED_ITEMS]
    order["total_amount"] = sum(i["quantity"] * i["unit_price"] for i in PARKED_ITEMS)
    return order


#: An Execution API request in the API server's access log.
EXECUTION_CALL = re.compile(r"method=(?P<method>[A-Z]+) path=(?P<path>/execution/\S*)")
_IDS = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _call_kind(path: str) -> str:
    """``/execution/xcoms/<dag>/<run>/<task>/<key>`` -> ``/execution/xcoms/<task>/<key>``; ids left out."""
    parts = _IDS.sub("/{id}", path).split("/")
    if len(parts) >= 7 and parts[2] == "xcoms":
        return "/".join(parts[:3] + parts[5:])
    if len(parts) >= 4 and parts[2] == "variables":
        return "/execution/variables/{key}"
    return "/".join(parts)


@dataclass
class Run:
    dag_id: str
    run_id: str
    order_id: str | None = None
    state: str | None = None
    queued_at: float | None = None
    start_date: float | None = None
    end_date: float | None = None
    problem: str | None = None
    api_calls: Counter = field(default_factory=Counter)

    @property
    def latency(self) -> float | None:
        if self.end_date is None or self.queued_at is None:
            return None
        return self.end_date - self.queued_at

    def update(self, api_run: dict) -> None:
        self.state = api_run.get("state")
        self.queued_at = parse_time(api_run.get("queued_at"))
        self.start_date = parse_time(api_run.get("start_date"))
        self.end_date = parse_time(api_run.get("end_date"))


class Bench:
    def __init__(self, settings: Settings, stack: Stack) -> None:
        self.settings = settings
        self.stack = stack
        self.tag = uuid.uuid4().hex[:6]
        self.problems: list[str] = []
        self._local = threading.local()
        self.results: dict[str, Any] = {}
        self.warmup_latencies: dict[str, list[float | None]] = {}

    # -- REST plumbing ------------------------------------------------------------------------

    @property
    def client(self) -> AirflowClient:
        assert self.stack.deployment is not None
        return self.stack.deployment.client

    def _thread_client(self) -> AirflowClient:
        client = getattr(self._local, "client", None)
        if client is None:
            d = self.stack.deployment
            client = AirflowClient(d.base_url, d.username, d.password, request_timeout=120)
            self._local.client = client
        return client

    def new_run(self, dag_id: str, prefix: str, kind: str = "happy") -> tuple[Run, dict]:
        run_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        if dag_id == ORDER:
            order_id = f"bench-{run_id}"
            conf = happy_order(order_id) if kind == "happy" else parked_order(order_id)
            return Run(dag_id, run_id, order_id=order_id), conf
        return Run(dag_id, run_id), {"bench": kind}

    def trigger(self, run: Run, conf: dict) -> None:
        self._thread_client().trigger(run.dag_id, conf, run_id=run.run_id)

    def list_runs(self, dag_id: str, prefix: str) -> dict[str, dict]:
        """Every run of ``dag_id`` whose id starts with ``prefix`` (pages of 100)."""
        runs: dict[str, dict] = {}
        offset = 0
        while True:
            page = self.client.get(
                f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns",
                params={"run_id_prefix_pattern": prefix, "limit": 100, "offset": offset, "order_by": "id"},
            )
            for r in page["dag_runs"]:
                if r["dag_run_id"].startswith(prefix):
                    runs[r["dag_run_id"]] = r
            offset += 100
            if offset >= page["total_entries"] or not page["dag_runs"]:
                return runs

    def ti_count(self, dag_id: str, *, prefix: str | None = None, states: Iterable[str] = (),
                 task_id: str | None = None) -> int:
        params: dict[str, Any] = {"limit": 1}
        if prefix:
            params["run_id_prefix_pattern"] = prefix
        if task_id:
            params["task_id"] = task_id
        if states:
            params["state"] = list(states)
        return self.client.get(f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/~/taskInstances",
                               params=params)["total_entries"]

    def wait_runs(self, runs: list[Run], prefix: str, timeout: float, label: str, poll: float = 1.0) -> None:
        """Wait until every run is final (polling the runs of ``prefix`` in pages), then record them."""
        by_dag: dict[str, list[Run]] = {}
        for run in runs:
            by_dag.setdefault(run.dag_id, []).append(run)
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        while True:
            pending = 0
            for dag_id, dag_runs in by_dag.items():
                api = self.list_runs(dag_id, prefix) if len(dag_runs) > 1 else {
                    dag_runs[0].run_id: self.client.dag_run(dag_id, dag_runs[0].run_id)}
                for run in dag_runs:
                    if run.run_id in api:
                        run.update(api[run.run_id])
                    if run.state not in ("success", "failed"):
                        pending += 1
            if not pending:
                return
            now = time.monotonic()
            if len(runs) > 1 and now - last_report >= 15:
                say(f"  {label}: {len(runs) - pending}/{len(runs)} runs final")
                last_report = now
            if now > deadline:
                raise BenchmarkError(f"{label}: {pending} of {len(runs)} runs not final after {timeout:.0f}s")
            time.sleep(poll)

    # -- checks -------------------------------------------------------------------------------

    def ledger(self, order_id: str) -> Counter:
        assert self.stack.services is not None
        return Counter(
            (e["service"], e["operation"], e["status"])
            for e in self.stack.services.audit(order_id)
            if not (e["operation"] == "email" and (e.get("details") or {}).get("to") == RUSH.OPS_EMAIL)
        )

    def check(self, runs: list[Run], label: str) -> int:
        """Every run success, every order's ledger one charge/reservation/shipment/email; problems found."""
        found = 0
        for run in runs:
            problem = None
            if run.state != "success":
                problem = f"ended {run.state!r}"
            elif run.order_id is not None:
                got = self.ledger(run.order_id)
                if got != EXPECTED_LEDGER:
                    problem = f"ledger of {run.order_id} is {dict(got)}, expected {dict(EXPECTED_LEDGER)}"
            if problem:
                run.problem = problem
                found += 1
                message = f"{label}: run {run.dag_id}/{run.run_id} {problem}"
                if found <= 2:
                    message += "\n" + self.stack.deployment.describe_run(run.dag_id, run.run_id, lines=15)
                self.problems.append(message)
                say(message.splitlines()[0])
        return found

    # -- P1: sequential -------------------------------------------------------------------------

    def sequential(self, k: int, label: str, first: int = 0) -> dict[str, list[Run]]:
        """K runs one at a time per DAG, alternating which DAG goes first."""
        out: dict[str, list[Run]] = {ORDER: [], NOOP: []}
        for i in range(k):
            order_of_dags = DAG_IDS if (i + first) % 2 == 0 else DAG_IDS[::-1]
            for dag_id in order_of_dags:
                run, conf = self.new_run(dag_id, f"{self.tag}-{label}-{i:03d}")
                mark = self.api_log_offset()
                self.trigger(run, conf)
                self.wait_runs([run], run.run_id, timeout=600, label=label, poll=0.25)
                run.api_calls = self.execution_api_calls(mark)
                self.check([run], label)
                out[dag_id].append(run)
            say(f"  {label} {i + 1}/{k}: order {out[ORDER][-1].latency:.2f}s, no-op {out[NOOP][-1].latency:.2f}s")
        return out

    # -- execution API calls ---------------------------------------------------------------------

    @property
    def api_log(self) -> Path:
        return self.stack.deployment.logs_dir / "api-server.log"

    def api_log_offset(self) -> int:
        try:
            return self.api_log.stat().st_size
        except OSError:
            return 0

    def execution_api_calls(self, offset: int) -> Counter:
        """
        The Execution API requests the API server logged since ``offset``, by kind (method and path,
        ids left out). Sequential runs are alone on the deployment, so these are their tasks' calls.
        """
        time.sleep(0.5)  # the access log line of the last call may lag its answer
        calls: Counter = Counter()
        with self.api_log.open("rb") as log:
            log.seek(offset)
            for raw in log:
                line = raw.decode("utf-8", "replace")
                found = EXECUTION_CALL.search(line)
                if found:
                    calls[f"{found['method']} {_call_kind(found['path'])}"] += 1
        return calls

    def warm_up(self) -> None:
        if self.settings.warmup:
            say(f"warm-up: {self.settings.warmup} run(s) per DAG, not counted")
            runs = self.sequential(self.settings.warmup, "warmup")
            self.warmup_latencies = {d: [r.latency for r in rs] for d, rs in runs.items()}

    # -- P2: burst ------------------------------------------------------------------------------

    def burst(self, dag_id: str, n: int, label: str, kind: str = "happy") -> tuple[list[Run], str]:
        prefix = f"{self.tag}-{label}-"
        made = [self.new_run(dag_id, prefix, kind) for _ in range(n)]
        with ThreadPoolExecutor(max_workers=min(n, 25)) as pool:
            list(pool.map(lambda rc: self.trigger(*rc), made))
        return [run for run, _ in made], prefix

    def cpu_roots(self) -> dict[str, int | None]:
        """The process trees whose CPU the bursts account for: Airflow's components and the services."""
        deployment, services = self.stack.deployment, self.stack.services
        roots = {name: proc.pgid for name, proc in (deployment.processes.items() if deployment else ())}
        roots["order-services"] = services.process.pid if services and services.process else None
        return roots

    def cpu_snapshot(self) -> dict[str, float]:
        snap = cpu.snapshot(self.cpu_roots())
        harness = os.times()
        snap["harness"] = harness.user + harness.system
        return snap

    @property
    def scheduler_log(self) -> Path:
        return self.stack.deployment.logs_dir / "scheduler.log"

    def task_instances(self, dag_id: str, prefix: str) -> list[dict]:
        """Every task instance of the runs of ``dag_id`` whose id starts with ``prefix`` (pages of 100)."""
        found: list[dict] = []
        offset = 0
        while True:
            page = self.client.get(f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/~/taskInstances",
                                   params={"run_id_prefix_pattern": prefix, "limit": 100, "offset": offset})
            found += [ti for ti in page["task_instances"] if ti["dag_run_id"].startswith(prefix)]
            offset += 100
            if offset >= page["total_entries"] or not page["task_instances"]:
                return found

    def slot_holds(self, dag_id: str, prefix: str, scheduler_offset: int, api_offset: int,
                   timeout: float = 20.0) -> dict[str, Any]:
        """
        How long each task of these runs held its executor slot beyond its own span
        (:mod:`benchmarks.slots`). A supervisor logs ``Workload finished`` when it lets the slot go,
        which can be after its run is final: wait up to ``timeout`` for every task's line.
        """
        ran = [ti for ti in self.task_instances(dag_id, prefix)
               if ti.get("start_date") and ti.get("end_date") and ti.get("state") not in ("skipped", "upstream_failed")]
        deadline = time.monotonic() + timeout
        while True:
            workloads = slots.workload_durations(self.scheduler_log, scheduler_offset)
            missing = sum(1 for ti in ran if ti["id"] not in workloads)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        summary = slots.summarize(ran, workloads, slots.heartbeat_calls(self.api_log, api_offset))
        summary["tasks_without_workload_line"] = missing
        return summary

    def drain(self, dag_id: str, n: int, label: str, long_task_s: int = 0) -> dict[str, Any]:
        t0 = time.monotonic()
        offsets = slots.log_offset(self.scheduler_log), slots.log_offset(self.api_log)
        long_run = None
        if long_task_s:
            long_run, _ = self.new_run(LONG_TASK, f"{self.tag}-{label}-long")
            self._thread_client().trigger(LONG_TASK, {"seconds": long_task_s}, run_id=long_run.run_id)
        cpu_before = self.cpu_snapshot()
        runs, prefix = self.burst(dag_id, n, label)
        triggered_s = time.monotonic() - t0
        self.wait_runs(runs, prefix, timeout=max(900.0, 30.0 * n), label=label)
        spent = cpu.cpu_spent(cpu_before, self.cpu_snapshot())
        cpu_per_run = {name: round(seconds / n, 3) for name, seconds in spent.items()}
        bad = self.check(runs, label)
        first = min(r.queued_at for r in runs)
        last = max(r.end_date for r in runs)
        rate = n / (last - first) * 60.0
        held = self.slot_holds(dag_id, prefix, *offsets)
        say(f"  {label}: {n} runs drained in {last - first:.1f}s = {rate:.1f} runs/min "
            f"(triggered in {triggered_s:.1f}s){' INVALID' if bad else ''}")
        say("    CPU s per run: " + ", ".join(f"{name} {value:.3f}" for name, value in cpu_per_run.items()))
        say(f"    slots ({held['tasks']} tasks): supervisor's workload p50 {held['workload_p50_s']}s p95 "
            f"{held['workload_p95_s']}s, {held['share_workloads_over_2s']} over 2s; task span p50 "
            f"{held['span_p50_s']}s; held beyond the task p50 {held['hold_p50_s']}s p95 {held['hold_p95_s']}s; "
            f"{held['heartbeats_per_task_s']} heartbeat calls per task-second")
        result = {"dag_id": dag_id, "n": n, "drain_s": last - first, "runs_per_min": rate,
                  "trigger_s": triggered_s, "invalid_runs": bad, "cpu_s_per_run": cpu_per_run,
                  "api_server_cpu_share": round(spent.get("api-server", 0.0) / (last - first), 3),
                  "slots": held, "latencies_s": [r.latency for r in runs]}
        if long_run is not None:
            self.wait_runs([long_run], long_run.run_id, timeout=long_task_s + 600, label=f"{label} long task")
            long_held = self.slot_holds(LONG_TASK, long_run.run_id, *offsets)
            result["long_task"] = {"seconds": long_task_s, "state": long_run.state, **long_held}
            if long_run.state != "success":
                self.problems.append(f"{label}: the {long_task_s}s task beside the burst ended {long_run.state!r}")
                result["invalid_runs"] += 1
            say(f"    the {long_task_s}s task beside it: {long_run.state}, span {long_held['span_p50_s']}s, "
                f"slot {long_held['workload_p50_s']}s, {long_held['heartbeat_calls']} heartbeat calls")
        return result

    # -- P1 and P2, in rounds --------------------------------------------------------------------

    def rounds(self) -> None:
        s = self.settings
        p1_rounds, p2_rounds = [], []
        for r in range(s.rounds):
            say(f"round {r + 1}/{s.rounds}")
            if "P1" in s.only:
                say(f"P1: {s.sequential} sequential runs per DAG")
                seq = self.sequential(s.sequential, f"p1r{r}", first=r)
                p1_rounds.append({
                    dag_id: {"latencies_s": [run.latency for run in runs],
                             "median_s": median(run.latency for run in runs),
                             "api_calls": [sum(run.api_calls.values()) for run in runs],
                             "api_calls_by_kind": dict(sum((run.api_calls for run in runs), Counter())),
                             "invalid_runs": sum(1 for run in runs if run.problem)}
                    for dag_id, runs in seq.items()
                })
            if "P2" in s.only:
                say(f"P2: bursts of {s.burst} runs per DAG")
                order_first = r % 2 == 0
                burst = {}
                for dag_id in (DAG_IDS if order_first else DAG_IDS[::-1]):
                    burst[dag_id] = self.drain(dag_id, s.burst, f"p2r{r}-{'order' if dag_id == ORDER else 'noop'}")
                p2_rounds.append(burst)
        if p1_rounds:
            self.results["P1"] = {
                **summarize_rounds(p1_rounds, "median_s"),
                "api_calls_per_run": {d: median(c for rd in p1_rounds for c in rd[d]["api_calls"]) for d in DAG_IDS},
            }
            calls = self.results["P1"]["api_calls_per_run"]
            say(f"P1: Execution API calls per run (median): order {calls[ORDER]}, no-op {calls[NOOP]}")
        if p2_rounds:
            self.results["P2"] = summarize_rounds(p2_rounds, "runs_per_min")
            if s.default_interval:
                self.results["P2"]["heartbeat_interval"] = self.heartbeat_interval_comparison()

    def heartbeat_interval_comparison(self) -> dict[str, Any] | None:
        """
        P2 at Airflow's default ``[workers] min_heartbeat_interval`` beside the shipped value, in
        this one invocation: the scheduler (whose LocalExecutor workers supervise the tasks) is
        restarted with each value, and each DAG drains one burst (with the long task beside it,
        when ``--long-task``); the rounds above keep the shipped value alone.
        """
        s = self.settings
        shipped = self.stack.env_settings.get(HEARTBEAT_INTERVAL, AIRFLOW_DEFAULT_HEARTBEAT_INTERVAL)
        if shipped == AIRFLOW_DEFAULT_HEARTBEAT_INTERVAL:
            say("P2: the shipped settings keep Airflow's default heartbeat interval; no comparison")
            return None
        deployment = self.stack.deployment
        assert deployment is not None
        out: dict[str, Any] = {"shipped_value": shipped, "default_value": AIRFLOW_DEFAULT_HEARTBEAT_INTERVAL}
        for name, value in (("default", AIRFLOW_DEFAULT_HEARTBEAT_INTERVAL), ("shipped", shipped)):
            say(f"P2: bursts of {s.burst} per DAG with {HEARTBEAT_INTERVAL}={value} ({name}); scheduler restarted")
            deployment.restart("scheduler", {HEARTBEAT_INTERVAL: value})
            # A scheduler just started is cold (its LocalExecutor workers, the DAGs' first lookups):
            # a run per DAG, not counted, as before the rounds, so that the first burst does not pay it.
            self.sequential(max(1, s.warmup), f"p2hb{value}-warmup")
            out[name] = {dag_id: self.drain(dag_id, s.burst, f"p2hb{value}-{'order' if dag_id == ORDER else 'noop'}",
                                            long_task_s=s.long_task_s)
                         for dag_id in DAG_IDS}
        # The last restart left the scheduler with the shipped value, as the rest of the run expects.
        out["speedup"] = {d: out["shipped"][d]["runs_per_min"] / out["default"][d]["runs_per_min"] for d in DAG_IDS}
        out["invalid_runs"] = sum(out[k][d]["invalid_runs"] for k in ("default", "shipped") for d in DAG_IDS)
        say("P2: shipped vs Airflow's default interval: " + ", ".join(
            f"{d} {out['shipped'][d]['runs_per_min']:.1f} vs {out['default'][d]['runs_per_min']:.1f} runs/min "
            f"(x{out['speedup'][d]:.2f})" for d in DAG_IDS))
        return out

    # -- P3: parked orders -----------------------------------------------------------------------

    def slots_snapshot(self, park_prefix: str) -> dict[str, Any]:
        pools = self.client.get("/api/v2/pools", params={"limit": 100})["pools"]
        running_all = sum(self.ti_count(d, states=["running"]) for d in DAG_IDS)
        queued_all = sum(self.ti_count(d, states=["queued"]) for d in DAG_IDS)
        parallelism = self.stack.executor_parallelism()
        return {
            "parked_running_tis": self.ti_count(ORDER, prefix=park_prefix, states=["running"]),
            "parked_queued_tis": self.ti_count(ORDER, prefix=park_prefix, states=["queued"]),
            "parked_waiting": self.ti_count(ORDER, prefix=park_prefix, states=PARKED_STATES, task_id="approve_order"),
            "running_tis_all_dags": running_all,
            "queued_tis_all_dags": queued_all,
            "executor_parallelism": parallelism,
            "executor_open_slots_estimate": parallelism - running_all - queued_all,
            "pools": {p["name"]: {k: p[k] for k in ("slots", "occupied_slots", "running_slots", "queued_slots",
                                                    "deferred_slots", "open_slots")} for p in pools},
        }

    def parked(self) -> None:
        s = self.settings
        m = s.parked
        baseline = self.results.get("P1", {}).get(ORDER)
        baseline_noop = self.results.get("P1", {}).get(NOOP)
        baseline_runs: dict[str, list[Run]] | None = None
        if baseline is None:
            say(f"P3: no P1 in this run; baseline first: {s.sequential} sequential runs per DAG without parked orders")
            baseline_runs = self.sequential(s.sequential, "p3base")
            baseline = median(r.latency for r in baseline_runs[ORDER])
            baseline_noop = median(r.latency for r in baseline_runs[NOOP])

        say(f"P3: parking {m} orders above the approval threshold")
        t0 = time.monotonic()
        park_prefix = f"{self.tag}-park-"
        made = [self.new_run(ORDER, park_prefix, kind="parked") for _ in range(m)]
        done = 0
        lock = threading.Lock()

        def trigger(rc):
            nonlocal done
            self.trigger(*rc)
            with lock:
                done += 1
                if done % 100 == 0:
                    say(f"  triggered {done}/{m}")

        with ThreadPoolExecutor(max_workers=min(m, 25)) as pool:
            list(pool.map(trigger, made))
        say(f"  {m} runs triggered in {time.monotonic() - t0:.0f}s; waiting for them to park in approve_order")
        deadline = time.monotonic() + max(900.0, 12.0 * m)
        last_report = 0.0
        while True:
            waiting = self.ti_count(ORDER, prefix=park_prefix, states=PARKED_STATES, task_id="approve_order")
            failed = self.client.get(f"/api/v2/dags/{ORDER}/dagRuns",
                                     params={"run_id_prefix_pattern": park_prefix, "state": "failed",
                                             "limit": 1})["total_entries"]
            if waiting + failed >= m:
                break
            now = time.monotonic()
            if now - last_report >= 15:
                say(f"  {now - t0:5.0f}s: {waiting}/{m} parked{f', {failed} failed' if failed else ''}")
                last_report = now
            if now > deadline:
                raise BenchmarkError(f"P3: only {waiting} of {m} orders parked after {now - t0:.0f}s")
            time.sleep(3)
        park_s = time.monotonic() - t0
        say(f"  {waiting}/{m} parked after {park_s:.0f}s{f'; {failed} runs failed' if failed else ''}")
        if failed:
            self.problems.append(f"P3: {failed} of {m} parked orders failed before reaching approval")

        time.sleep(2)  # let the last tasks' processes end
        before = self.slots_snapshot(park_prefix)
        say(f"  while parked: {before['parked_running_tis']} running task instances among the parked runs, "
            f"{before['running_tis_all_dags']} running in all; default_pool "
            f"{before['pools'].get('default_pool', {})}")
        say(f"P3: {s.parked_sequential} sequential runs per DAG with {waiting} orders parked")
        seq = self.sequential(s.parked_sequential, "p3")
        after = self.slots_snapshot(park_prefix)
        with_parked = median(r.latency for r in seq[ORDER])
        with_parked_noop = median(r.latency for r in seq[NOOP])
        self.results["P3"] = {
            "m": m,
            "parked": waiting,
            "parked_after": after["parked_waiting"],
            "failed_before_parking": failed,
            "park_s": park_s,
            "slots_before": before,
            "slots_after": after,
            "parked_running_tis": max(before["parked_running_tis"], after["parked_running_tis"]),
            ORDER: with_parked,
            "order_without_parked_s": baseline,
            "noop_with_parked_s": with_parked_noop,
            "noop_without_parked_s": baseline_noop,
            "noop_ratio": with_parked_noop / baseline_noop if baseline_noop else None,
            "latencies_s": {d: [r.latency for r in rs] for d, rs in seq.items()},
            "baseline_latencies_s": ({d: [r.latency for r in rs] for d, rs in baseline_runs.items()}
                                     if baseline_runs else None),
            "ratio": with_parked / baseline if baseline else None,
            "invalid_runs": sum(1 for d in DAG_IDS for r in seq[d] if r.problem) + failed,
        }
        say(f"P3: order latency {with_parked:.2f}s with {waiting} parked vs {baseline:.2f}s without "
            f"(x{with_parked / baseline:.2f}); no-op {with_parked_noop:.2f}s vs {baseline_noop:.2f}s; "
            f"{after['parked_waiting']} still parked")
        self.results["P3"]["variants"] = self.p3_variants(waiting, baseline, baseline_noop)

    def p3_variants(self, parked: int, baseline: float, baseline_noop: float) -> dict[str, Any]:
        """
        The same sequential runs under each of ``--p3-variants`` other than the shipped settings
        (measured above), with the same orders parked; ratios against P1's (or P3's own) baseline
        taken with the shipped settings. The components each variant changes are restarted with
        its settings, and back with the run's own afterwards.
        """
        s = self.settings
        deployment = self.stack.deployment
        assert deployment is not None
        out: dict[str, Any] = {}
        for name in s.p3_variants:
            if name == "shipped":
                continue
            changes = P3_VARIANTS[name]
            say(f"P3 variant {name}: restarting {', '.join(changes)} with {changes}")
            for component, env in changes.items():
                deployment.restart(component, env)
            seq = self.sequential(s.parked_sequential, f"p3-{name}")
            order, noop = median(r.latency for r in seq[ORDER]), median(r.latency for r in seq[NOOP])
            out[name] = {"settings": changes, ORDER: order, NOOP: noop, "ratio": order / baseline,
                         "noop_ratio": noop / baseline_noop,
                         "latencies_s": {d: [r.latency for r in rs] for d, rs in seq.items()},
                         "invalid_runs": sum(1 for d in DAG_IDS for r in seq[d] if r.problem)}
            say(f"P3 variant {name}: order {order:.2f}s (x{order / baseline:.2f}), no-op {noop:.2f}s "
                f"(x{noop / baseline_noop:.2f}) with {parked} parked")
            for component in changes:
                deployment.restart(component)
        return out

    # -- P4: parse time --------------------------------------------------------------------------

    def parse_times(self) -> None:
        s = self.settings
        env = self.stack.environment()
        files = {ORDER: self.stack.dags_folder / ORDER_DAG_FILE.name, NOOP: self.stack.dags_folder / NOOP_DAG_FILE.name}
        samples: dict[str, list[dict]] = {ORDER: [], NOOP: []}
        work = self.stack.home / "p4"
        work.mkdir(exist_ok=True)
        say(f"P4: {s.parse_processes} fresh processes per DAG file, alternately")
        for i in range(s.parse_processes):
            for dag_id in (DAG_IDS if i % 2 == 0 else DAG_IDS[::-1]):
                result = work / f"{dag_id}-{i}.json"
                log = work / f"{dag_id}-{i}.log"
                try:
                    run_logged(f"parse probe {dag_id}",
                               [sys.executable, str(BENCH_DIR / "parse_probe.py"), str(files[dag_id]),
                                str(self.stack.dags_folder), str(result)],
                               log, env, timeout=300)
                except HarnessError as exc:
                    raise BenchmarkError(f"P4: parsing {files[dag_id].name} failed: {exc}\n{tail(log, 40)}") from exc
                samples[dag_id].append(json.loads(result.read_text()))
        probe_order = median(x["parse_file_s"] for x in samples[ORDER])
        probe_noop = median(x["parse_file_s"] for x in samples[NOOP])
        processor = self.processor_parse_durations(s.parse_processes)
        order = median(processor[ORDER])
        noop = median(processor[NOOP])
        parts = ("dagbag_s", "serialize_s", "stability_check_s")
        self.results["P4"] = {
            ORDER: order, NOOP: noop, "ratio": order / noop,
            "processor_samples_s": processor,
            "probe": {ORDER: probe_order, NOOP: probe_noop, "ratio": probe_order / probe_noop},
            **{part: {d: median(x.get(part) for x in samples[d]) for d in DAG_IDS} for part in parts},
            "samples": samples, "invalid_runs": 0,
        }
        detail = "; ".join(
            f"{part[:-2]} {self.results['P4'][part][ORDER] * 1000:.0f} vs {self.results['P4'][part][NOOP] * 1000:.0f} ms"
            for part in parts if self.results["P4"][part][ORDER] is not None
        )
        say(f"P4: the DAG processor's parse {order * 1000:.0f} ms vs {noop * 1000:.0f} ms (x{order / noop:.2f}); "
            f"in-process probe {probe_order * 1000:.0f} vs {probe_noop * 1000:.0f} ms "
            f"(x{probe_order / probe_noop:.2f}), of which {detail}")

    def processor_parse_durations(self, wanted: int, timeout: float = 300.0) -> dict[str, list[float]]:
        """
        Airflow's own parse time of each file: the DAG's ``last_parse_duration`` (REST API, DAG
        details; what the UI shows), i.e. the DAG processor's whole processing of the file, in its
        parsing process. ``wanted`` distinct parses per file, read as the processor re-parses them
        (every ``min_file_process_interval``).
        """
        seen: dict[str, dict[str, float]] = {d: {} for d in DAG_IDS}
        deadline = time.monotonic() + timeout
        while any(len(v) < wanted for v in seen.values()):
            if time.monotonic() > deadline:
                raise BenchmarkError(f"P4: fewer than {wanted} parses per file in {timeout:.0f}s: {seen}")
            for dag_id in DAG_IDS:
                details = self.client.get(f"/api/v2/dags/{dag_id}/details")
                if details.get("last_parsed_time") and details.get("last_parse_duration") is not None:
                    seen[dag_id][details["last_parsed_time"]] = float(details["last_parse_duration"])
            time.sleep(1)
        return {d: list(v.values())[-wanted:] for d, v in seen.items()}

    # -- P5: hook overhead -----------------------------------------------------------------------

    def hook_overhead(self) -> None:
        s = self.settings
        services = self.stack.services
        assert services is not None
        order_id = f"bench-{self.tag}-p5"
        charge = services.post("/payment/charges", idempotency_key=new_key("bench"), json={
            "order_id": order_id, "customer_id": "cus-1", "amount": 2500, "currency": "USD",
            "payment_method": "pm_card_ok"})
        work = self.stack.home / "p5"
        work.mkdir(exist_ok=True)
        result, log = work / "hook.json", work / "hook.log"
        say(f"P5: {s.hook_calls} PaymentHook.get_charge calls and {s.hook_calls} raw GETs, interleaved")
        try:
            run_logged("hook probe", [sys.executable, str(BENCH_DIR / "hook_probe.py"), services.base_url,
                                      services.api_key, charge["payment_id"], str(s.hook_calls), str(result)],
                       log, self.stack.environment(), timeout=600)
        except HarnessError as exc:
            raise BenchmarkError(f"P5: the hook probe failed: {exc}\n{tail(log, 40)}") from exc
        data = json.loads(result.read_text())
        hook_ms = median(data["hook_s"]) * 1000
        raw_ms = median(data["raw_s"]) * 1000
        self.results["P5"] = {
            ORDER: hook_ms, NOOP: raw_ms, "ratio": hook_ms - raw_ms,
            "hook_p90_ms": sorted(data["hook_s"])[int(0.9 * (len(data["hook_s"]) - 1))] * 1000,
            "raw_p90_ms": sorted(data["raw_s"])[int(0.9 * (len(data["raw_s"]) - 1))] * 1000,
            "hook_created_ms": data["hook_created_s"] * 1000,
            "hook_first_call_ms": data["hook_first_call_s"] * 1000,
            "hook_s": data["hook_s"], "raw_s": data["raw_s"], "url": data["url"], "invalid_runs": 0,
            "raw_httpx_ms": median(data["raw_httpx_s"]) * 1000 if data.get("raw_httpx_s") else None,
            "raw_httpx_s": data.get("raw_httpx_s"),
        }
        httpx_note = (f" (raw with httpx.Client {self.results['P5']['raw_httpx_ms']:.2f} ms)"
                      if self.results["P5"]["raw_httpx_ms"] is not None else "")
        say(f"P5: hook {hook_ms:.2f} ms vs raw {raw_ms:.2f} ms: {hook_ms - raw_ms:+.2f} ms{httpx_note}")

    # -- all -----------------------------------------------------------------------------------

    def measure(self) -> None:
        s = self.settings
        if {"P1", "P2"} & set(s.only) or "P3" in s.only:
            self.warm_up()
        if {"P1", "P2"} & set(s.only):
            self.rounds()
        # Before P3, which leaves M runs open in the database.
        if "P4" in s.only:
            self.parse_times()
        if "P5" in s.only:
            self.hook_overhead()
        if "P3" in s.only:
            self.parked()


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def verdict(p: str, result: dict | None) -> str:
    if result is None:
        return "not run"
    if result.get("invalid_runs"):
        return "INVALID"
    op, goal, _ = GOALS[p]
    value = result.get("ratio")
    if value is None:
        return "n/a"
    ok = value <= goal if op == "<=" else value >= goal
    if p == "P3" and result.get("parked_running_tis"):
        ok = False
    return "pass" if ok else "FAIL"


def summarize_rounds(rounds: list[dict[str, Any]], figure: str) -> dict[str, Any]:
    """Rounds of one measure for both DAGs: each round's ratio, the medians, the invalid runs."""
    per_round = [rd[ORDER][figure] / rd[NOOP][figure] for rd in rounds]
    return {
        "rounds": rounds,
        "ratio_per_round": per_round,
        ORDER: median(rd[ORDER][figure] for rd in rounds),
        NOOP: median(rd[NOOP][figure] for rd in rounds),
        "ratio": median(per_round),
        "invalid_runs": sum(rd[d]["invalid_runs"] for rd in rounds for d in DAG_IDS),
    }


def table_rows(results: dict[str, Any], settings: Settings) -> list[list[str]]:
    def f(value, fmt):
        return "-" if value is None else format(value, fmt)

    rows = [["", "measure", "order DAG", "baseline", "ratio", "goal", "result"]]
    spec = {
        "P1": (f"latency, {settings.sequential} sequential x {settings.rounds} rounds", "s", ".2f", "no-op DAG"),
        "P2": (f"burst of {settings.burst} x {settings.rounds} rounds, runs/min", "", ".1f", "no-op DAG"),
        "P3": (f"latency with {settings.parked} parked", "s", ".2f", "none parked"),
        "P4": (f"parse (DAG processor), median of {settings.parse_processes}", "ms", ".0f", "no-op file"),
        "P5": (f"hook call vs raw GET, {settings.hook_calls} calls", "ms", ".2f", "raw GET"),
    }
    for p in ALL_PS:
        what, unit, fmt, base = spec[p]
        r = results.get(p)
        op, goal, _ = GOALS[p]
        goal_text = f"{op} {goal:g}{' ms' if p == 'P5' else ''}"
        if r is None:
            rows.append([p, what, "-", "-", "-", goal_text, "not run"])
            continue
        scale = 1000 if p == "P4" else 1
        order_v = r.get(ORDER)
        base_v = r.get("order_without_parked_s") if p == "P3" else r.get(NOOP)
        ratio = r.get("ratio")
        ratio_text = (f"{ratio:+.2f} ms" if p == "P5" else f"x{ratio:.3f}") if ratio is not None else "-"
        if p == "P3":
            what += f" ({r['parked_running_tis']} running TIs among them)"
        unit_text = f" {unit}" if unit else ""
        rows.append([p, what, f"{f(order_v and order_v * scale, fmt)}{unit_text}",
                     f"{f(base_v and base_v * scale, fmt)}{unit_text} ({base})", ratio_text, goal_text,
                     verdict(p, r)])
    return rows


def format_table(rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def chart(results: dict[str, Any], path: Path, title: str, rows: list[list[str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {ORDER: "#d95f02", NOOP: "#7570b3"}
    fig, grid = plt.subplots(2, 3, figsize=(17, 10))
    axes = list(grid.flat)
    fig.suptitle(title, fontsize=12)

    def heading(ax, p: str, text: str) -> None:
        r = results.get(p)
        line = f"{p} {text}"
        if r and r.get("ratio") is not None:
            op, goal, _ = GOALS[p]
            value = f"{r['ratio']:+.2f} ms" if p == "P5" else f"ratio {r['ratio']:.2f}"
            line += f"\n{value} (goal {op} {goal:g}{' ms' if p == 'P5' else ''}): {verdict(p, r)}"
        ax.set_title(line, fontsize=10)
        if r is None:
            ax.axis("off")
            ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="grey")

    def dots(ax, groups: list[tuple[str, list[float], str]], ylabel: str) -> None:
        for x, (_label, values, color) in enumerate(groups):
            values = [v for v in values if v is not None]
            if not values:
                continue
            ax.boxplot([values], positions=[x], widths=0.5, showfliers=False, medianprops={"color": "black"})
            jitter = [x + 0.15 * ((i % 7) - 3) / 3 for i in range(len(values))]
            ax.scatter(jitter, values, s=14, alpha=0.6, color=color, zorder=3)
        ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=9)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)

    def p1_latencies() -> dict[str, list[float]]:
        return {d: [v for rd in results["P1"]["rounds"] for v in rd[d]["latencies_s"]] for d in DAG_IDS}

    ax = axes[0]
    heading(ax, "P1", "sequential runs: latency (end_date - queued_at)")
    if "P1" in results:
        lat = p1_latencies()
        dots(ax, [("order_processing", lat[ORDER], colors[ORDER]), ("order_shape_noop", lat[NOOP], colors[NOOP])],
             "run latency, s")
    ax = axes[1]
    heading(ax, "P2", "burst: drain rate")
    if "P2" in results:
        rounds = list(results["P2"]["rounds"])
        labels = [f"round {i + 1}\n{rd[ORDER]['n']} runs" for i, rd in enumerate(rounds)]
        hb = results["P2"].get("heartbeat_interval")
        if hb:
            for name in ("default", "shipped"):
                rounds.append(hb[name])
                labels.append(f"interval {hb[f'{name}_value']} s\n({name})")
        width = 0.38
        for j, d in enumerate(DAG_IDS):
            xs = [i + (j - 0.5) * width for i in range(len(rounds))]
            values = [rd[d]["runs_per_min"] for rd in rounds]
            ax.bar(xs, values, width, label=d, color=colors[d])
            for x, v in zip(xs, values, strict=True):
                ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(rounds)), labels, fontsize=8)
        ax.set_ylabel("runs per minute (N / (last end - first queued))")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(axis="y", alpha=0.3)
    ax = axes[2]
    r3 = results.get("P3")
    heading(ax, "P3", f"latency with {r3['parked'] if r3 else 'M'} orders parked in approval")
    if r3:
        without = p1_latencies() if "P1" in results else r3["baseline_latencies_s"]
        dots(ax, [("order\nwithout", without[ORDER], colors[ORDER]),
                  ("order\nparked", r3["latencies_s"][ORDER], colors[ORDER]),
                  ("no-op\nwithout", without[NOOP], colors[NOOP]),
                  ("no-op\nparked", r3["latencies_s"][NOOP], colors[NOOP])],
             "run latency, s")
        ax.text(0.02, 0.02, f"running task instances among the parked runs: {r3['parked_running_tis']}",
                transform=ax.transAxes, fontsize=8)
    ax = axes[3]
    heading(ax, "P4", "DAG file parse: DAG processor, and in-process part")
    if "P4" in results:
        sm = results["P4"]["samples"]
        ps = results["P4"]["processor_samples_s"]
        dots(ax, [("order\nprocessor", [v * 1000 for v in ps[ORDER]], colors[ORDER]),
                  ("no-op\nprocessor", [v * 1000 for v in ps[NOOP]], colors[NOOP]),
                  ("order\nin-process", [x["parse_file_s"] * 1000 for x in sm[ORDER]], colors[ORDER]),
                  ("no-op\nin-process", [x["parse_file_s"] * 1000 for x in sm[NOOP]], colors[NOOP])],
             "parse time, ms")
    ax = axes[4]
    heading(ax, "P5", "hook call vs raw GET on loopback")
    if "P5" in results:
        r5 = results["P5"]
        groups = [("PaymentHook.get_charge", [v * 1000 for v in r5["hook_s"]], colors[ORDER]),
                  ("requests GET", [v * 1000 for v in r5["raw_s"]], colors[NOOP])]
        if r5.get("raw_httpx_s"):
            groups.append(("httpx GET\n(not the baseline)", [v * 1000 for v in r5["raw_httpx_s"]], "#1b9e77"))
        dots(ax, groups, "call time, ms")
    ax = axes[5]
    ax.axis("off")
    cells = [[r[0], r[2], r[3].split(" (")[0], r[4], r[5], r[6]] for r in rows[1:]]
    table = ax.table(cellText=cells, colLabels=["", "order DAG", "baseline", "ratio", "goal", "result"],
                     loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.6)
    for (row, col), cell in table.get_celld().items():
        if row > 0 and col == 5:
            cell.set_facecolor({"pass": "#d9f0d3", "FAIL": "#f4cccc", "INVALID": "#fce5cd"}.get(cells[row - 1][5], "white"))
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def p2_slot_lines(r2: dict[str, Any]) -> list[str]:
    """The report's lines on how long an executor slot stays busy after its task (issue 24)."""
    rows = []
    for rd_index, rd in enumerate(r2["rounds"]):
        rows += [(f"round {rd_index + 1}, shipped settings", d, rd[d]) for d in DAG_IDS if rd[d].get("slots")]
    hb = r2.get("heartbeat_interval")
    if hb:
        for name in ("default", "shipped"):
            rows += [(f"`min_heartbeat_interval={hb[f'{name}_value']}` ({name})", d, hb[name][d]) for d in DAG_IDS]
    if not rows:
        return []
    lines = [
        "P2 detail, executor slots: the supervisor's `Workload finished` duration (when it lets the slot go) "
        "against the task's own span (`start_date` to `end_date`), over every task of the burst that ran once "
        "on a worker; `held` is the difference (process start, and the wait for the task process's exit after "
        "it reported its state: docs/slot-release.md).",
        "",
        "| burst | DAG | runs/min | workload p50 / p95 | over 2 s | task span p50 / p95 | held p50 / p95 "
        "| heartbeats per task-s | API server CPU share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for what, d, r in rows:
        sl = r["slots"]
        lines.append(f"| {what} | {d} | {r['runs_per_min']:.1f} | {sl['workload_p50_s']} / {sl['workload_p95_s']} s "
                     f"| {sl['share_workloads_over_2s']:.0%} | {sl['span_p50_s']} / {sl['span_p95_s']} s "
                     f"| {sl['hold_p50_s']} / {sl['hold_p95_s']} s | {sl['heartbeats_per_task_s']} "
                     f"| {r.get('api_server_cpu_share', 0):.2f} |" if sl["tasks"] else
                     f"| {what} | {d} | {r['runs_per_min']:.1f} | - | - | - | - | - | - |")
    lines.append("")
    if hb:
        lines.append("Shipped interval against Airflow's default, runs/min: " + ", ".join(
            f"{d} {hb['shipped'][d]['runs_per_min']:.1f} vs {hb['default'][d]['runs_per_min']:.1f} "
            f"(x{hb['speedup'][d]:.2f})" for d in DAG_IDS) + ".")
        longs = [(name, d, hb[name][d]["long_task"]) for name in ("default", "shipped") for d in DAG_IDS
                 if hb[name][d].get("long_task")]
        if longs:
            lines.append("A task of " + str(longs[0][2]["seconds"]) + " s beside each of these bursts: " + "; ".join(
                f"{name} interval, beside {d}: {lt['state']}, span {lt['span_p50_s']} s, slot {lt['workload_p50_s']} s, "
                f"{lt['heartbeat_calls']} heartbeat calls ({lt['heartbeats_per_task_s']}/s)" for name, d, lt in longs) + ".")
        lines.append("")
    return lines


def write_report(settings: Settings, results: dict[str, Any], meta: dict[str, Any], problems: list[str]) -> dict:
    if settings.out_dir is None:
        settings.out_dir = Path(tempfile.mkdtemp(prefix="order-bench-smoke-"))
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    base = settings.out_dir / f"benchmarks{settings.suffix}"
    paths = {"md": base.with_suffix(".md"), "json": base.with_suffix(".json"), "png": base.with_suffix(".png")}
    rows = table_rows(results, settings)
    meta["rounds_detail"] = {
        p: [round(x, 3) for x in results[p]["ratio_per_round"]] for p in ("P1", "P2") if p in results
    }
    paths["json"].write_text(json.dumps({"meta": meta, "results": results, "problems": problems,
                                         "table": rows}, indent=1, default=str) + "\n")
    title = (f"order_processing vs order_shape_noop, Airflow {meta['airflow_version']}, profile "
             f"{settings.profile_name}, {meta['nproc']} cores, {meta['date']}")
    chart(results, paths["png"], title, rows)
    lines = [
        f"# Benchmarks{f' ({settings.profile.stem})' if settings.profile else ''}",
        "",
        "Issue 11: the order DAG (`dags/order_processing.py`) against a no-op DAG of the same shape "
        "(`benchmarks/dags/order_shape_noop.py`) on the same Airflow. Written by `python -m benchmarks.run` "
        "(`make bench`); how each figure is measured is in `benchmarks/run.py`'s docstring.",
        "",
        f"* date: {meta['date']}",
        f"* command: `{meta['command']}`",
        f"* machine: {meta['nproc']} cores (`nproc`), {meta['platform']}, Python {meta['python']}",
        f"* load average (1, 5, 15 min): before {meta['loadavg_before']}, after {meta['loadavg_after']}",
        f"* Airflow {meta['airflow_version']}, LocalExecutor, PostgreSQL; profile: {settings.profile_name}",
        f"* settings on top of the harness's: {', '.join(f'`{k}={v}`' for k, v in meta['settings'].items())}",
        f"* duration: {meta['duration_s'] / 60:.1f} min; P1 and P2: median of {settings.rounds} round(s)"
        + (f" (ratios per round: {meta['rounds_detail']})" if meta["rounds_detail"] else ""),
        "",
        format_table(rows, markdown=True),
        "",
        f"![benchmarks](benchmarks{settings.suffix}.png)",
        "",
    ]
    if "P1" in results and results["P1"].get("api_calls_per_run"):
        calls = results["P1"]["api_calls_per_run"]
        kinds = Counter()
        runs = 0
        for rd in results["P1"]["rounds"]:
            kinds.update(rd[ORDER]["api_calls_by_kind"])
            runs += len(rd[ORDER]["api_calls"])
        lines += [
            f"Execution API calls per run (API server access log, sequential runs; median): order "
            f"{calls[ORDER]}, no-op {calls[NOOP]}. The order's, per run: "
            + ", ".join(f"`{kind}` {n / max(runs, 1):.1f}" for kind, n in kinds.most_common()) + ".",
            "",
        ]
    if "P2" in results:
        per_dag: dict[str, list[dict[str, float]]] = {ORDER: [], NOOP: []}
        for rd in results["P2"]["rounds"]:
            for dag_id in DAG_IDS:
                if rd[dag_id].get("cpu_s_per_run"):
                    per_dag[dag_id].append(rd[dag_id]["cpu_s_per_run"])
        if per_dag[ORDER] and per_dag[NOOP]:
            parts = list(per_dag[ORDER][0])
            cpu = {d: {part: median(r[part] for r in per_dag[d]) for part in parts} for d in DAG_IDS}
            lines += [
                "P2 detail, CPU seconds per run during the bursts (median of the rounds; each Airflow component "
                "with all its processes, the LocalExecutor's workers and task processes under the scheduler; "
                "`other` is PostgreSQL and the rest of the machine):",
                "",
                "| component | order | no-op | difference |",
                "|---|---|---|---|",
                *[f"| {part} | {cpu[ORDER][part]:.3f} | {cpu[NOOP][part]:.3f} | {cpu[ORDER][part] - cpu[NOOP][part]:+.3f} |"
                  for part in parts],
                "",
            ]
    if "P2" in results:
        lines += p2_slot_lines(results["P2"])
    if "P3" in results and results["P3"].get("variants"):
        r3 = results["P3"]
        lines += [
            f"P3 variants, with the same {r3['parked']} orders parked (sequential runs; ratios against the "
            "shipped settings' latency with none parked):",
            "",
            "| settings | order | no-op |",
            "|---|---|---|",
            f"| shipped | {r3[ORDER]:.2f} s (x{r3['ratio']:.2f}) | {r3['noop_with_parked_s']:.2f} s "
            f"(x{r3['noop_ratio']:.2f}) |",
            *[f"| {name}: {v['settings']} | {v[ORDER]:.2f} s (x{v['ratio']:.2f}) | {v[NOOP]:.2f} s "
              f"(x{v['noop_ratio']:.2f}) |" for name, v in r3["variants"].items()],
            "",
        ]
    if "P3" in results:
        r3 = results["P3"]
        before = r3["slots_before"]
        lines += [
            f"P3 detail: {r3['parked']} of {r3['m']} orders parked in `approve_order` after {r3['park_s']:.0f}s "
            f"({r3['parked_after']} still parked after the measurement); task instances `running` among their "
            f"runs: {r3['parked_running_tis']}; while parked, running task instances in all DAGs "
            f"{before['running_tis_all_dags']}, queued {before['queued_tis_all_dags']}, of "
            f"parallelism {before['executor_parallelism']} (open executor slots about "
            f"{before['executor_open_slots_estimate']}); no-op latency with them parked x"
            f"{r3['noop_ratio']:.2f} of without.",
            "",
        ]
    if "P4" in results:
        r4 = results["P4"]
        parts = [f"{part[:-2]} {r4[part][ORDER] * 1000:.0f} ms vs {r4[part][NOOP] * 1000:.0f} ms"
                 for part in ("dagbag_s", "serialize_s", "stability_check_s") if r4.get(part, {}).get(ORDER) is not None]
        probe = r4.get("probe") or {}
        lines += [f"P4 detail: the DAG processor's `last_parse_duration` (ms) order "
                  f"{[round(v * 1000) for v in r4['processor_samples_s'][ORDER]]}, no-op "
                  f"{[round(v * 1000) for v in r4['processor_samples_s'][NOOP]]}; the in-process part alone "
                  f"(parse probe, medians) {probe.get(ORDER, 0) * 1000:.0f} ms vs {probe.get(NOOP, 0) * 1000:.0f} ms "
                  f"(x{probe.get('ratio', 0):.2f}): {', '.join(parts)}.", ""]
    if "P5" in results:
        r5 = results["P5"]
        lines += [f"P5 detail: hook p50 {r5[ORDER]:.2f} ms / p90 {r5['hook_p90_ms']:.2f} ms, raw p50 "
                  f"{r5[NOOP]:.2f} ms / p90 {r5['raw_p90_ms']:.2f} ms; importing and creating the hook {r5['hook_created_ms']:.1f} ms, "
                  f"its first call (reads the connection) {r5['hook_first_call_ms']:.1f} ms"
                  + (f"; the same GET with one httpx.Client: p50 {r5['raw_httpx_ms']:.2f} ms (hook over it "
                     f"{r5[ORDER] - r5['raw_httpx_ms']:+.2f} ms)" if r5.get("raw_httpx_ms") is not None else "")
                  + ".", ""]
    if problems:
        lines += ["## Problems", "", *[f"* {p.splitlines()[0]}" for p in problems[:50]], ""]
    paths["md"].write_text("\n".join(lines))
    return paths


# ------------------------------------------------------------------------------------------------


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def airflow_version() -> str:
    try:
        return importlib.metadata.version("apache-airflow")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    started = time.monotonic()
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": settings.command,
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "airflow_version": airflow_version(),
        "profile": str(settings.profile) if settings.profile else None,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "parameters": {k: getattr(settings, k) for k in ("sequential", "burst", "parked", "rounds",
                                                          "parse_processes", "hook_calls", "warmup", "smoke")},
        "only": list(settings.only),
    }
    say(f"{settings.command}: measuring {','.join(settings.only)}; load average {meta['loadavg_before']}")
    stack = Stack(settings)
    bench = Bench(settings, stack)
    # The Airflow home whose logs (the scheduler's `Workload finished` lines) the figures come from;
    # it is deleted at the end unless --keep.
    meta["airflow_home"] = str(stack.home / "airflow")
    meta["airflow_home_kept"] = settings.keep
    failed, interrupted = True, False
    try:
        stack.up()
        meta["settings"] = stack.env_settings
        bench.measure()
        failed = False
    except KeyboardInterrupt as exc:
        interrupted = True
        say(f"interrupted ({exc}); tearing down")
        return 130
    except (BenchmarkError, HarnessError) as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        # The teardown runs to its end: a second Ctrl-C or TERM does not cut it short.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            stack.down(failed, interrupted)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["warmup_latencies_s"] = bench.warmup_latencies
    meta["duration_s"] = time.monotonic() - started
    rows = table_rows(bench.results, settings)
    print()
    print(format_table(rows))
    print()
    paths = write_report(settings, bench.results, meta, bench.problems)
    say(f"written: {', '.join(str(p) for p in paths.values())}")
    if bench.problems:
        say(f"{len(bench.problems)} problem(s): measurements marked INVALID")
        for p in bench.problems[:10]:
            print(p[:3000])
        return 1
    if settings.fail_on_goals and any(verdict(p, bench.results.get(p)) == "FAIL" for p in settings.only):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
