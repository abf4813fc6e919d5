"""Machinery to run a real Airflow 3 deployment for end-to-end tests.

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

import atexit
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
# Task-instance states that mean "this task never ran".
NOT_RUN_TI_STATES = frozenset({None, "none", "upstream_failed", "skipped", "removed", "scheduled", "queued"})


class HarnessError(RuntimeError):
    """Raised when the deployment cannot be brought up or an API wait times out."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tail(path: Path, lines: int = 60) -> str:
    """Last ``lines`` lines of a text file (empty string if it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def report(config: Any, text: str) -> None:
    """Print ``[e2e] text`` on pytest's terminal even while output is captured (fixtures run captured).

    ``config`` is the ``pytest.Config``; without a terminal reporter the line goes to stderr.
    """
    terminal = config.pluginmanager.get_plugin("terminalreporter") if config else None
    if terminal is None:
        sys.stderr.write(f"[e2e] {text}\n")
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        terminal.write_line(f"\n[e2e] {text}")


def read_env_file(path: Path) -> dict[str, str]:
    """``{KEY: value}`` of a plain env file (``deploy/airflow-order.env``): ``KEY=value`` lines, ``#`` comments.

    Values are taken verbatim (no quotes, no expansion), as docker's ``--env-file`` and
    ``scripts/demo.sh`` read them; any other line is an error.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if match is None:
            raise HarnessError(f"{path}:{number} is not KEY=value: {raw!r}")
        values[match.group(1)] = match.group(2)
    return values


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


class PostgresDatabase:
    """A uniquely named PostgreSQL database, created on demand and dropped at the end.

    The name is ``<prefix>_<pid>_<random>``; :meth:`drop_stale` removes databases with the same
    prefix whose creating process no longer exists (left over by a killed test run).
    """

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        prefix: str = "order_e2e",
    ) -> None:
        self.host = host or os.environ.get("ORDER_E2E_PG_HOST", "127.0.0.1")
        self.port = int(port or os.environ.get("ORDER_E2E_PG_PORT", "5432"))
        self.user = user or os.environ.get("ORDER_E2E_PG_USER", "postgres")
        self.prefix = prefix
        self.name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
        self.created = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{self.name}"

    def _admin_connection(self):
        import psycopg2

        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", connect_timeout=5
        )
        conn.autocommit = True
        return conn

    def check_reachable(self) -> None:
        try:
            self._admin_connection().close()
        except Exception as exc:
            raise HarnessError(
                f"PostgreSQL is not reachable at {self.host}:{self.port} as user {self.user!r}: {exc}. "
                "The integration tests need a PostgreSQL server with trust auth for that user "
                "(CI starts one in .ci/run)."
            ) from exc

    def drop_stale(self) -> list[str]:
        """Drop databases of this prefix whose owning test process is gone."""
        pattern = re.compile(rf"^{re.escape(self.prefix)}_(\d+)_[0-9a-f]+$")
        dropped = []
        conn = self._admin_connection()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (self.prefix + "_%",))
                names = [row[0] for row in cur.fetchall()]
                for name in names:
                    match = pattern.match(name)
                    if match and not _pid_alive(int(match.group(1))):
                        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                        dropped.append(name)
        finally:
            conn.close()
        return dropped

    def create(self) -> None:
        conn = self._admin_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            conn.close()
        self.created = True

    def drop(self) -> None:
        if not self.created:
            return
        conn = self._admin_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            conn.close()
        self.created = False


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def _group_members(pgid: int) -> list[int]:
    """PIDs (not zombies) whose process group is ``pgid``, read from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after the last ')'.
        rest = stat[stat.rfind(")") + 2 :].split()
        state, pgrp = rest[0], int(rest[2])
        if pgrp == pgid and state != "Z":
            members.append(int(entry))
    return members


@dataclass(frozen=True)
class ProcessInfo:
    """What /proc says about one process."""

    pid: int
    ppid: int
    pgid: int
    state: str  # R, S, D, Z (zombie), T...
    cmdline: str  # the process title (setproctitle changes it), arguments joined by spaces


def process_info(pid: int) -> ProcessInfo | None:
    """The process ``pid`` from /proc, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("utf-8", errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = stat[stat.rfind(")") + 2 :].split()
    return ProcessInfo(pid=pid, ppid=int(rest[1]), pgid=int(rest[2]), state=rest[0], cmdline=cmdline)


def process_ancestry(pid: int) -> list[ProcessInfo]:
    """``pid`` and its ancestors up to init, nearest first (stops where /proc has no entry)."""
    chain: list[ProcessInfo] = []
    seen: set[int] = set()
    while pid > 0 and pid not in seen:
        seen.add(pid)
        info = process_info(pid)
        if info is None:
            break
        chain.append(info)
        pid = info.ppid
    return chain


def wait_until_dead(pid: int, timeout: float = 10.0) -> bool:
    """Wait until ``pid`` is gone or a zombie (dead, not yet reaped); True if it is."""
    deadline = time.monotonic() + timeout
    while True:
        info = process_info(pid)
        if info is None or info.state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


_LIVE_PROCESSES: set[ManagedProcess] = set()


def _stop_all_at_exit() -> None:
    for proc in list(_LIVE_PROCESSES):
        with contextlib.suppress(Exception):
            proc.stop(timeout=10)


atexit.register(_stop_all_at_exit)


@dataclass(eq=False)
class ManagedProcess:
    """One command in its own process group (session), output appended to ``log_path``."""

    name: str
    argv: list[str]
    log_path: Path
    env: Mapping[str, str]
    cwd: Path | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)
    started_at: float | None = field(default=None, init=False)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} starting {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env),
                cwd=str(self.cwd) if self.cwd else None,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        _LIVE_PROCESSES.add(self)
        return self

    @property
    def pgid(self) -> int | None:
        # start_new_session=True makes the child a session and group leader: pgid == pid.
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, timeout: float = 20.0) -> list[int]:
        """TERM the whole group, wait up to ``timeout`` s, then KILL what is left.

        Returns the PIDs that had to be killed.
        """
        if self.proc is None:
            return []
        pgid = self.pgid
        assert pgid is not None
        killed: list[int] = []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()
            if self.proc.returncode is not None and not _group_members(pgid):
                break
            time.sleep(0.2)
        else:
            killed = _group_members(pgid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        _LIVE_PROCESSES.discard(self)
        return killed

    def tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def run_logged(
    name: str, argv: list[str], log_path: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """Run a command to completion in its own process group; kill the group on timeout."""
    proc = ManagedProcess(name, argv, log_path, env).start()
    assert proc.proc is not None
    try:
        rc = proc.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.stop(timeout=5)
        raise HarnessError(f"{name} did not finish within {timeout:.0f}s; log tail:\n{proc.tail()}") from exc
    proc.stop(timeout=5)  # reap anything it left in its group
    if rc != 0:
        raise HarnessError(f"{name} exited with {rc}; log tail:\n{proc.tail(80)}")
    return subprocess.CompletedProcess(argv, rc)


# --------------------------------------------------------------------------------------------
# REST client
# --------------------------------------------------------------------------------------------


class AirflowClient:
    """Minimal client for the Airflow 3 public REST API (``/api/v2``)."""

    def __init__(self, base_url: str, username: str, password: str, request_timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.request_timeout = request_timeout
        self.session = requests.Session()
        self._token: str | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def login(self) -> str:
        resp = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=self.request_timeout,
        )
        if resp.status_code not in (200, 201):
            raise HarnessError(f"POST /auth/token answered {resp.status_code}: {resp.text[:500]}")
        self._token = resp.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, *, expected: Iterable[int] | None = None, **kwargs: Any):
        """Send a request with the bearer token; log in again once on 401."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        kwargs.setdefault("timeout", self.request_timeout)
        for attempt in (1, 2):
            if self._token is None:
                self.login()
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self._token}"}
            resp = self.session.request(method, url, headers=headers, **kwargs)
            # An expired or invalid token answers 401 or 403 ("Invalid JWT token"): log in again once.
            if resp.status_code in (401, 403) and attempt == 1:
                self._token = None
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            break
        if expected is not None and resp.status_code not in set(expected):
            raise HarnessError(f"{method} {path} answered {resp.status_code}: {resp.text[:1000]}")
        return resp

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, expected=(200,), **kwargs).json()

    @staticmethod
    def _q(value: str) -> str:
        return quote(value, safe="")

    # -- health and DAGs ----------------------------------------------------------------------

    def health(self) -> dict:
        resp = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        resp.raise_for_status()
        return resp.json()

    def import_errors(self) -> list[dict]:
        return self.get("/api/v2/importErrors", params={"limit": 100}).get("import_errors", [])

    def dag(self, dag_id: str) -> dict | None:
        resp = self.request("GET", f"/api/v2/dags/{self._q(dag_id)}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise HarnessError(f"GET dag {dag_id} answered {resp.status_code}: {resp.text[:500]}")
        return resp.json()

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0, poll: float = 1.0) -> dict:
        """Wait until the DAG has been parsed and serialized; fail fast on an import error."""
        deadline = time.monotonic() + timeout
        while True:
            dag = self.dag(dag_id)
            if dag is not None:
                # The DAG row and its serialized form are written together; /details needs both.
                resp = self.request("GET", f"/api/v2/dags/{self._q(dag_id)}/details")
                if resp.status_code == 200:
                    return resp.json()
            errors = self.import_errors()
            if errors:
                text = "\n\n".join(f"{e.get('filename')}:\n{e.get('stack_trace')}" for e in errors)
                raise HarnessError(f"DAG {dag_id!r} not available; import errors:\n{text}")
            if time.monotonic() > deadline:
                raise HarnessError(f"DAG {dag_id!r} was not parsed within {timeout:.0f}s (no import errors)")
            time.sleep(poll)

    def unpause(self, dag_id: str) -> dict:
        return self.request(
            "PATCH", f"/api/v2/dags/{self._q(dag_id)}", json={"is_paused": False}, expected=(200,)
        ).json()

    # -- DAG runs -------------------------------------------------------------------------------

    def trigger(self, dag_id: str, conf: dict | None = None, run_id: str | None = None) -> str:
        """Trigger a run (``logical_date: null``) and return its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id is not None:
            body["dag_run_id"] = run_id
        resp = self.request("POST", f"/api/v2/dags/{self._q(dag_id)}/dagRuns", json=body, expected=(200, 201))
        return resp.json()["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180.0, poll: float = 0.5) -> str:
        """Wait until the run is ``success`` or ``failed`` and return that state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.dag_run(dag_id, run_id)["state"]
            if state in TERMINAL_RUN_STATES:
                return state
            if time.monotonic() > deadline:
                states = self.task_states(dag_id, run_id)
                raise HarnessError(
                    f"run {dag_id}/{run_id} still {state!r} after {timeout:.0f}s; task states: {states}"
                )
            time.sleep(poll)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(
            f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances",
            params={"limit": 100},
        )["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id: state}`` (mapped tasks as ``task_id[map_index]``)."""
        states = {}
        for ti in self.task_instances(dag_id, run_id):
            key = ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}[{ti['map_index']}]"
            states[key] = ti["state"]
        return states

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        """The XCom value (JSON-decoded when the API hands back the stored JSON text)."""
        resp = self.request(
            "GET",
            f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/"
            f"{self._q(task_id)}/xcomEntries/{self._q(key)}",
            params={"map_index": map_index},
            expected=(200,),
        )
        value = resp.json()["value"]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: Iterable[str], timeout: float = 120.0
    ) -> str:
        """Wait until a task instance is in one of ``states``; return that state."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            state = self.task_states(dag_id, run_id).get(task_id)
            if state in wanted:
                return state
            if time.monotonic() > deadline:
                raise HarnessError(f"{task_id} of {dag_id}/{run_id} still {state!r} after {timeout:.0f}s")
            time.sleep(0.3)

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict:
        """One task instance, with its ``try_number``, ``state``, ``pid``, ``hostname``..."""
        suffix = f"/{map_index}" if map_index >= 0 else ""
        return self.get(
            f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/{self._q(task_id)}{suffix}"
        )

    def task_tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Every try of a task instance (the grid view's tries), oldest first."""
        return self.get(
            f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/{self._q(task_id)}/tries"
        )["task_instances"]

    def event_logs(self, **filters: Any) -> list[dict]:
        """Audit-log entries (``GET /api/v2/eventLogs``) matching ``filters``, e.g. ``event="heartbeat timeout"``."""
        params = {"limit": 100, "order_by": "when", **filters}
        return self.get("/api/v2/eventLogs", params=params)["event_logs"]

    # -- human in the loop ------------------------------------------------------------------------

    def hitl_details(self, dag_id: str, run_id: str) -> list[dict]:
        """The run's Human-in-the-loop requests (Required Actions)."""
        return self.get(f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/hitlDetails")[
            "hitl_details"
        ]

    def respond(self, dag_id: str, run_id: str, task_id: str, chosen_options: list[str], map_index: int = -1):
        """Answer a Human-in-the-loop request, as a person would from Required Actions."""
        return self.request(
            "PATCH",
            f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/"
            f"{self._q(task_id)}/{map_index}/hitlDetails",
            json={"chosen_options": chosen_options, "params_input": {}},
            expected=(200,),
        ).json()

    def clear_task(
        self,
        dag_id: str,
        run_id: str,
        task_ids: list[str],
        *,
        include_downstream: bool = True,
        only_failed: bool = False,
    ) -> list[dict]:
        """Clear task instances of one run (and, by default, their downstream) so they run again."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": list(task_ids),
            "only_failed": only_failed,
            "reset_dag_runs": True,
            "include_downstream": include_downstream,
        }
        resp = self.request(
            "POST", f"/api/v2/dags/{self._q(dag_id)}/clearTaskInstances", json=body, expected=(200,)
        )
        return resp.json().get("task_instances", [])


# --------------------------------------------------------------------------------------------
# The deployment
# --------------------------------------------------------------------------------------------

#: Users every deployment has besides the admin, ``{username: SimpleAuthManager role}``: a read-only
#: ``viewer`` for authorization tests (roles: viewer, user, op, admin).
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

    def migrate(self, timeout: float = 600.0) -> None:
        started = time.monotonic()
        run_logged(
            "airflow db migrate",
            self.airflow_argv("db", "migrate"),
            self.logs_dir / "db-migrate.log",
            self.environment(),
            timeout,
        )
        self.timings["db_migrate_s"] = time.monotonic() - started
        self.create_pools()

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
        )

    def start(self) -> None:
        env = self.environment()
        for name, args in COMPONENTS.items():
            self.processes[name] = ManagedProcess(
                name, self.airflow_argv(*args), self.logs_dir / f"{name}.log", env, cwd=self.home
            ).start()
        self.timings["started_at"] = time.monotonic()

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
