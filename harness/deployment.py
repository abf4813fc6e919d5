"""A real Airflow 3 (api-server, scheduler, dag-processor, triggerer) on the LocalExecutor, configured through the environment only."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from harness.client import AirflowClient
from harness.common import (
    REPO_ROOT,
    HarnessError,
    free_port,
    tail,
)
from harness.processes import (
    ManagedProcess,
    run_logged,
)

DEFAULT_EXTRA_USERS: dict[str, str] = {"viewer": "viewer"}

COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],  # host/port come from [api] host/port
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


class AirflowDeployment:
    """A real Airflow 3 (api-server, scheduler, dag-processor, triggerer) on LocalExecutor.

    Configuration is passed only through the environment of the child processes, so nothing
    leaks into the calling process.
    """

    def __init__(
        self,
        home: Path,
        sql_alchemy_conn: str,
        *,
        dags_folder: Path | None = None,
        username: str = "admin",
        password: str | None = None,
        api_port: int | None = None,
        connections: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        python: str | None = None,
        extra_users: Mapping[str, str] | None = None,
    ) -> None:
        self.home = Path(home)
        self.logs_dir = self.home / "component-logs"
        self.sql_alchemy_conn = sql_alchemy_conn
        self.dags_folder = Path(dags_folder or REPO_ROOT / "dags")
        self.username = username
        self.password = password or secrets.token_urlsafe(16)
        self.api_port = api_port or free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.connections = dict(connections or {})
        self.extra_env = dict(extra_env or {})
        self.python = python or sys.executable
        self.processes: dict[str, ManagedProcess] = {}
        self.timings: dict[str, float] = {}
        self._client: AirflowClient | None = None
        #: More SimpleAuthManager users besides the admin, ``{username: role}``, each with its own
        #: generated password (see :meth:`user_password` and :meth:`client_for`).
        self.extra_users = dict(DEFAULT_EXTRA_USERS if extra_users is None else extra_users)
        self.extra_passwords = {name: secrets.token_urlsafe(16) for name in self.extra_users}

    # -- configuration -----------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        bin_dir = str(Path(self.python).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env.pop("AIRFLOW_CONFIG", None)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "64",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "32",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                    [f"{self.username}:admin", *(f"{name}:{role}" for name, role in self.extra_users.items())]
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                "AIRFLOW__CORE__FERNET_KEY": self._secret("fernet_key"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": self._secret("api_secret_key"),
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt_secret"),
                # Parse quickly: look for new files every 2 s, re-parse a file after 5 s.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                # Business waits (provider option) shrink by 100x.
                "AIRFLOW__ORDER_PROVIDER__TIME_SCALE": "0.01",
            }
        )
        env.update({f"AIRFLOW_CONN_{k.upper()}": v for k, v in self.connections.items()})
        env.update(self.extra_env)
        return env

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def _secret(self, name: str) -> str:
        """Secrets generated once per deployment and shared by all its components."""
        secrets_file = self.home / "harness-secrets.json"
        data = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
        if name not in data:
            if name == "fernet_key":
                from cryptography.fernet import Fernet

                data[name] = Fernet.generate_key().decode()
            else:
                data[name] = secrets.token_urlsafe(32)
            self.home.mkdir(parents=True, exist_ok=True)
            secrets_file.write_text(json.dumps(data))
        return data[name]

    # -- lifecycle -------------------------------------------------------------------------------

    def airflow_argv(self, *args: str) -> list[str]:
        return [self.python, "-m", "airflow", *args]

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.passwords_file.write_text(json.dumps({self.username: self.password, **self.extra_passwords}) + "\n")

    def migrate(self, timeout: float = 600.0, *, pools: bool = True) -> None:
        """``airflow db migrate``, then (``pools``) the order pools (:meth:`create_pools`)."""
        started = time.monotonic()
        run_logged(
            "airflow db migrate",
            self.airflow_argv("db", "migrate"),
            self.logs_dir / "db-migrate.log",
            self.environment(),
            timeout,
            cwd=self.home,
        )
        self.timings["db_migrate_s"] = time.monotonic() - started
        if pools:
            self.create_pools()

    def cli(self, *args: str, timeout: float = 300.0) -> str:
        """Run ``airflow <args>`` with the deployment's configuration; return its output (raises on failure)."""
        log_path = self.logs_dir / f"cli-{'-'.join(a for a in args if not a.startswith('-'))}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        run_logged(f"airflow {' '.join(args)}", self.airflow_argv(*args), log_path, self.environment(), timeout,
                   cwd=self.home)
        with open(log_path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")

    def create_pools(self, timeout: float = 120.0) -> None:
        """The order services' pools, from the policy table (``python -m airflow_order_provider.pools``)."""
        from airflow_order_provider.policies import pool_specs

        pools_file = self.home / "order-pools.json"
        pools_file.write_text(json.dumps(pool_specs()))
        run_logged(
            "airflow pools import",
            self.airflow_argv("pools", "import", str(pools_file)),
            self.logs_dir / "pools-import.log",
            self.environment(),
            timeout,
            cwd=self.home,
        )

    def bring_up(self) -> dict:
        """Prepare the home, migrate the database (with the order pools), start every component and
        wait until all are healthy; the database must exist. Returns the last health answer."""
        self.prepare()
        self.migrate()
        self.start()
        return self.wait_ready()

    def start(self) -> None:
        env = self.environment()
        for name, args in COMPONENTS.items():
            self.processes[name] = ManagedProcess(
                name, self.airflow_argv(*args), self.logs_dir / f"{name}.log", env, cwd=self.home
            ).start()
        self.timings["started_at"] = time.monotonic()

    def restart(self, name: str, extra_env: Mapping[str, str] | None = None, timeout: float = 240.0) -> None:
        """
        Stop one component's process group and start it again, with ``extra_env`` on top of the
        deployment's environment (e.g. another ``[workers]`` setting for the scheduler, whose
        LocalExecutor workers supervise the tasks), then wait until every component is healthy.
        """
        self.processes[name].stop(timeout=30)
        env = {**self.environment(), **(extra_env or {})}
        restarted_at = datetime.now(timezone.utc)
        self.processes[name] = ManagedProcess(
            name, self.airflow_argv(*COMPONENTS[name]), self.logs_dir / f"{name}.log", env, cwd=self.home
        ).start()
        self.wait_ready(timeout=timeout)
        part = name.replace("-", "_")
        if part not in ("scheduler", "triggerer", "dag_processor"):
            return
        # The health answer stays "healthy" on the stopped process's last heartbeat for a while:
        # wait for one of the new process's.
        deadline = time.monotonic() + timeout
        while True:
            self.check_processes()
            beat = (self.client.health().get(part) or {}).get(f"latest_{part}_heartbeat")
            if beat and datetime.fromisoformat(beat.replace("Z", "+00:00")) > restarted_at:
                return
            if time.monotonic() > deadline:
                raise HarnessError(f"airflow {name} restarted but sent no heartbeat in {timeout:.0f}s")
            time.sleep(0.5)

    def start_extra(self, name: str, component: str, extra_env: Mapping[str, str] | None = None,
                    timeout: float = 240.0) -> None:
        """Start one more process of ``component`` (e.g. a second scheduler) under ``name``."""
        env = {**self.environment(), **(extra_env or {})}
        self.processes[name] = ManagedProcess(
            name, self.airflow_argv(*COMPONENTS[component]), self.logs_dir / f"{name}.log", env, cwd=self.home
        ).start()
        self.wait_ready(timeout=timeout)

    def stop_extra(self, name: str) -> None:
        """Stop a process started by :meth:`start_extra`."""
        self.processes.pop(name).stop(timeout=30)

    def check_processes(self) -> None:
        for name, proc in self.processes.items():
            if not proc.alive():
                raise HarnessError(
                    f"airflow {name} exited with {proc.returncode()}; log tail:\n{proc.tail(80)}"
                )

    def wait_ready(self, timeout: float = 240.0) -> dict:
        """Wait until the API answers and scheduler, dag-processor and triggerer heartbeat."""
        started = time.monotonic()
        deadline = started + timeout
        client = AirflowClient(self.base_url, self.username, self.password)
        last: Any = None
        while True:
            self.check_processes()
            try:
                health = client.health()
                last = health
                if all(
                    (health.get(part) or {}).get("status") == "healthy"
                    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                ):
                    break
            except (requests.RequestException, ValueError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"Airflow not healthy after {timeout:.0f}s (last health: {last})\n{self.diagnostics()}"
                )
            time.sleep(1.0)
        client.login()
        self._client = client
        self.timings["ready_s"] = time.monotonic() - started
        return health

    @property
    def client(self) -> AirflowClient:
        if self._client is None:
            self._client = AirflowClient(self.base_url, self.username, self.password)
        return self._client

    @property
    def jwt_secret(self) -> str:
        """The ``[api_auth] jwt_secret`` every component signs and checks tokens with."""
        return self._secret("jwt_secret")

    def user_password(self, username: str) -> str:
        """The password of the admin or of one of :attr:`extra_users`."""
        return self.password if username == self.username else self.extra_passwords[username]

    def client_for(self, username: str) -> AirflowClient:
        """A REST client logged in as another user (one of :attr:`extra_users`), e.g. ``viewer``."""
        return AirflowClient(self.base_url, username, self.user_password(username))

    def stop(self) -> dict[str, list[int]]:
        """Stop every component's process group (in reverse start order)."""
        killed = {}
        for name in reversed(list(self.processes)):
            killed[name] = self.processes[name].stop(timeout=20)
        return {k: v for k, v in killed.items() if v}

    # -- diagnostics -------------------------------------------------------------------------

    def diagnostics(self, lines: int = 40) -> str:
        parts = []
        for name, path in [("db-migrate", self.logs_dir / "db-migrate.log")] + [
            (name, proc.log_path) for name, proc in self.processes.items()
        ]:
            text = tail(path, lines)
            if text:
                parts.append(f"===== {name} ({path}) =====\n{text}")
        return "\n".join(parts)

    def task_log_files(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[Path]:
        base = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        pattern = f"task_id={task_id}/**/*.log" if task_id else "task_id=*/**/*.log"
        return sorted(base.glob(pattern))

    def task_log(self, dag_id: str, run_id: str, task_id: str, lines: int = 60) -> str:
        """Readable text of a task's log files (all attempts), from the shared log folder."""
        out = []
        for path in self.task_log_files(dag_id, run_id, task_id):
            out.append(f"--- {path.relative_to(self.home)}")
            for raw in tail(path, lines).splitlines():
                out.append(_render_log_line(raw))
        return "\n".join(out)

    def describe_run(self, dag_id: str, run_id: str, lines: int = 40) -> str:
        """Task states plus the logs of every task that did not succeed (for assertion messages)."""
        try:
            tis = self.client.task_instances(dag_id, run_id)
        except Exception as exc:  # diagnostics must not raise
            return f"(could not list task instances: {exc})"
        parts = [f"run {dag_id}/{run_id}:"]
        for ti in sorted(tis, key=lambda t: (t.get("start_date") or "9", t["task_id"])):
            parts.append(f"  {ti['task_id']:<32} {ti['state']!s:<16} try={ti.get('try_number')}")
        for ti in tis:
            if ti["state"] not in ("success", "skipped", None):
                parts.append(self.task_log(dag_id, run_id, ti["task_id"], lines))
        return "\n".join(parts)


_LOG_NOISE_KEYS = frozenset(
    {
        "timestamp",
        "level",
        "event",
        "logger",
        "ti_id",
        "map_index",
        "run_id",
        "try_number",
        "task_id",
        "dag_id",
        "filename",
        "lineno",
        "error_detail",
    }
)


def _render_log_line(raw: str) -> str:
    """Task logs are JSON lines in Airflow 3; show them as ``time level event`` plus the exception."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(rec, dict):
        return raw
    ts = str(rec.get("timestamp", ""))[11:23]
    level = str(rec.get("level", "")).upper()
    line = f"{ts} {level:<7} {rec.get('event', '')}"
    extra = {k: v for k, v in rec.items() if k not in _LOG_NOISE_KEYS}
    if extra:
        line += f" {json.dumps(extra, default=str)[:1500]}"
    for exc in rec.get("error_detail") or []:
        frames = exc.get("frames") or []
        where = " <- ".join(f"{Path(f['filename']).name}:{f['lineno']} {f['name']}" for f in frames[::-1][:4])
        line += f"\n        {exc.get('exc_type')}: {exc.get('exc_value')}  [{where}]"
    return line
