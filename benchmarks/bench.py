"""
What every measure does on the running stack (:class:`BenchBase`): trigger runs through the REST API,
wait until they are final, check each order's ledger, run DAGs one at a time, count the Execution API
calls. The measures (``p1_p2_rounds``, ``p3_parked``, ``p4_parse``, ``p5_hook``) add their own methods.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks.common import BenchmarkError, say
from benchmarks.runs import EXECUTION_CALL, Run, _call_kind, happy_order, parked_order
from benchmarks.settings import DAG_IDS, NOOP, ORDER, Settings
from benchmarks.stack import Stack
from harness.client import AirflowClient
from harness.orders import COMPLETED, ledger

#: A happy order's ledger: one charge, reservation, shipment and email, all succeeded.
EXPECTED_LEDGER = Counter(COMPLETED)


class BenchBase:
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
        return Counter(ledger(self.stack.services, order_id))

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

