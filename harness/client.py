"""A small REST client for Airflow's public API (``/api/v2``) with a bearer token from ``POST /auth/token``."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import requests

from harness.common import (
    TERMINAL_RUN_STATES,
    HarnessError,
)


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
        return self.set_paused(dag_id, False)

    def set_paused(self, dag_id: str, paused: bool) -> dict:
        return self.request(
            "PATCH", f"/api/v2/dags/{self._q(dag_id)}", json={"is_paused": paused}, expected=(200,)
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
