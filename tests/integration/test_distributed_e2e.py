"""
Airflow's distributed engine running the order saga, without Docker: the CeleryExecutor on the
machine's Redis (broker) and PostgreSQL (metadata and result backend), two schedulers at once, two
Celery workers each consuming some of the service queues plus the default queue, the triggerer and
the API server, all on 127.0.0.1, each in its own process group (see
:mod:`harness.celery`; the same topology as ``docker-compose.yaml``).

Orders go in the way customers' orders do, all at once through ``POST /orders`` (the order API on
Airflow's API server), and every claim is checked on the services' audit ledger:

* a rush of N orders: every order reaches a final status, each service's steps ran on that
  service's queue and pool (the task instances' ``queue`` and ``pool``), each charge, reservation,
  shipment and email happened exactly once;
* one scheduler SIGKILLed during a rush: the other carries on, every order finishes, nothing twice;
* the Celery worker running a payment SIGKILLed while the charge is in flight: the heartbeat timeout
  fails that try, the other worker retries it, exactly one charge;
* the reference services restarted during a rush: every order finishes, nothing twice.

N is ``ORDER_E2E_RUSH_N`` (20 in ``make test``; ``make test-distributed N=100``). The figures (drain
times, recovery times, ``POST /orders`` latencies) are printed and written to
``.e2e/distributed-figures.json``; they are measurements, not assertions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from order_services.testing import OrderServicesServer, start_order_services

from airflow_order_provider.policies import policy_for
from harness import (
    REPO_ROOT,
    HarnessError,
    PostgresDatabase,
    process_ancestry,
    process_info,
    read_env_file,
    report,
    topology,
    wait_until_dead,
)
from harness.celery import CeleryDeployment, check_redis, redis_url
from harness.orders import an_order, ledger
from harness.services import connections

pytestmark = [pytest.mark.integration, pytest.mark.distributed]

DAG_ID = "order_processing"
RUSH_N = int(os.environ.get("ORDER_E2E_RUSH_N", "20"))
#: Clients sending the rush at once.
CLIENTS = 20
FINAL_STATUSES = frozenset({"completed", "cancelled", "failed"})
HAPPY_LEDGER = [
    ("payment", "charge", "succeeded"),
    ("inventory", "reserve", "succeeded"),
    ("shipping", "schedule", "succeeded"),
    ("notification", "email", "succeeded"),
]
API_KEY = "dist-key"
FIGURES_FILE = REPO_ROOT / ".e2e" / "distributed-figures.json"

#: This deployment's settings on top of the harness's and deploy/airflow-order.env's.
DISTRIBUTED_SETTINGS = {
    # A worker not heard of for 10 s is dead (300 s in deploy/); supervisors heartbeat every 2 s.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "1",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
    # Sized for a rush on a loaded 2-core machine, where the whole rush takes minutes and a task may
    # wait for a CPU: every step may ride out a restart of the services (a few seconds of connection
    # refused; at time_scale 0.01 the table's retry waits are about a second each) and a slow
    # start (step timeouts of 30 s instead of the 5 s floor), and an order's workflow clock (1 h,
    # 36 s here) and ship deadline (24 h, 864 s here) outlast the rush.
    "AIRFLOW__ORDER_PROVIDER__POLICY_OVERRIDES": json.dumps(
        {
            service: {"attempts": attempts, "step_timeout": 3000}
            for service, attempts in (("payment", 8), ("inventory", 10), ("shipping", 8), ("notification", 10))
        }
    ),
    "AIRFLOW__ORDER_PROVIDER__WORKFLOW_TIMEOUT": "360000",
    "AIRFLOW__ORDER_PROVIDER__SHIP_DEADLINE": "8640000",
}


# -- fixtures ----------------------------------------------------------------------------------------


@dataclass
class Distributed:
    deployment: CeleryDeployment
    services: OrderServicesServer
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def client(self):
        return self.deployment.client

    def record(self, config, name: str, values: dict[str, Any]) -> None:
        self.figures[name] = values
        FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
        FIGURES_FILE.write_text(json.dumps({"rush_n": RUSH_N, **self.figures}, indent=2) + "\n")
        report(config, f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


@pytest.fixture(scope="module")
def dist(request, tmp_path_factory):
    check_redis(redis_url())
    workdir = tmp_path_factory.mktemp("distributed")
    services = start_order_services(
        workdir / "order-services.db", api_key=API_KEY, dispatch_delay=1.0, log_path=workdir / "order-services.log"
    )
    database = PostgresDatabase(prefix="order_dist")
    database.check_reachable()
    database.drop_stale()
    home = REPO_ROOT / ".e2e" / database.name
    deployment = CeleryDeployment(
        home,
        database.url,
        connections=connections(services),
        extra_env={**read_env_file(REPO_ROOT / "deploy" / "airflow-order.env"), **DISTRIBUTED_SETTINGS},
    )
    failed = False
    t0 = time.monotonic()
    try:
        database.create()
        deployment.bring_up()
        deployment.client.wait_for_dag(DAG_ID, timeout=180)
        deployment.client.unpause(DAG_ID)
        report(request.config, f"distributed Airflow up in {time.monotonic() - t0:.1f}s at {deployment.base_url}, home {home}")
        env = Distributed(deployment, services)
        yield env
        failed = request.session.testsfailed > 0
    except BaseException:
        failed = True
        raise
    finally:
        if failed:
            sys.stderr.write(f"\n[dist] failure: tails of the component logs\n{deployment.diagnostics(60)}\n")
        killed = deployment.stop()
        if killed:
            sys.stderr.write(f"\n[dist] had to SIGKILL leftover processes: {killed}\n")
        services.stop()
        database.drop()
        if failed or os.environ.get("ORDER_E2E_KEEP"):
            sys.stderr.write(f"\n[dist] AIRFLOW_HOME with all logs kept at {home}\n")
        else:
            shutil.rmtree(home, ignore_errors=True)


# -- the rush ------------------------------------------------------------------------------------------


@dataclass
class Rush:
    orders: list[dict[str, Any]]
    post_latencies: list[float]
    started: float
    drained: float
    statuses: dict[str, str]
    events: dict[str, float] = field(default_factory=dict)

    @property
    def drain_s(self) -> float:
        return round(self.drained - self.started, 1)

    def latency_figures(self) -> dict[str, float]:
        ordered = sorted(self.post_latencies)
        return {
            "post_p50_s": round(statistics.median(ordered), 2),
            "post_p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
            "post_max_s": round(ordered[-1], 2),
        }


def rush_orders(n: int, prefix: str) -> list[dict[str, Any]]:
    """N good orders, every fifth one from a premium customer."""
    orders = []
    for i in range(n):
        order = an_order(customer_tier="premium" if i % 5 == 0 else "standard")
        order["order_id"] = f"{prefix}-{i:03d}-{order['order_id'][-6:]}"
        orders.append(order)
    return orders


def post_orders(dist: Distributed, orders: list[dict[str, Any]]) -> list[float]:
    """``POST /orders`` of every order at once (CLIENTS at a time); every one must answer 201."""
    token = dist.client.login()
    url = f"{dist.deployment.base_url}/orders"

    def post(order):
        started = time.monotonic()
        response = requests.post(url, json=order, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        return response, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(post, orders))
    refused = [(o["order_id"], r.status_code, r.text[:300]) for o, (r, _) in zip(orders, answers, strict=True) if r.status_code != 201]
    assert not refused, f"POST /orders refused orders: {refused[:5]}"
    return [latency for _, latency in answers]


def order_statuses(dist: Distributed, since: datetime) -> dict[str, str]:
    """``{order_id: status}`` of the orders created since then (one ``GET /orders``)."""
    answer = dist.client.get("/orders", params={"since": since.isoformat(), "limit": 500})
    return {o["order_id"]: o["status"] for o in answer["orders"]}


def run_rush(
    dist: Distributed,
    prefix: str,
    *,
    n: int = RUSH_N,
    during: Callable[[int, Rush], None] | None = None,
    timeout: float = 1500.0,
) -> Rush:
    """Send the rush, then poll until every order is final; ``during(final_count, rush)`` runs at each poll."""
    orders = rush_orders(n, prefix)
    since = datetime.now(timezone.utc)
    started = time.monotonic()
    latencies = post_orders(dist, orders)
    rush = Rush(orders, latencies, started, 0.0, {})
    wanted = {o["order_id"] for o in orders}
    deadline = started + timeout
    while True:
        dist.deployment.check_processes()
        statuses = {k: v for k, v in order_statuses(dist, since).items() if k in wanted}
        final = sum(1 for s in statuses.values() if s in FINAL_STATUSES)
        if during is not None:
            during(final, rush)
        if final == n:
            rush.drained = time.monotonic()
            rush.statuses = statuses
            return rush
        if time.monotonic() > deadline:
            stuck = {k: v for k, v in statuses.items() if v not in FINAL_STATUSES}
            raise HarnessError(f"{len(stuck)} of {n} orders not final after {timeout:.0f}s: {dict(list(stuck.items())[:10])}")
        time.sleep(1.0)


def assert_every_order_completed_once(dist: Distributed, rush: Rush) -> None:
    not_completed = {k: v for k, v in rush.statuses.items() if v != "completed"}
    assert not not_completed, (
        f"orders not completed: {not_completed}\n"
        + dist.deployment.describe_run(DAG_ID, next(iter(not_completed)))
    )
    wrong = {}
    for order in rush.orders:
        entries = ledger(dist.services, order["order_id"])
        if entries != HAPPY_LEDGER:
            wrong[order["order_id"]] = entries
    assert not wrong, f"ledger not exactly one charge, reservation, shipment and email: {wrong}"


def service_of_tasks() -> dict[str, tuple[str, bool]]:
    """``{task_id: (service, is_compensation)}`` of the order DAG's service operators."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(REPO_ROOT / "dags")).dags[DAG_ID]
    return {
        task.task_id: (task.service, bool(getattr(task, "is_compensation", False)))
        for task in dag.tasks
        if getattr(task, "service", None)
    }


def all_task_instances(dist: Distributed, run_ids: set[str]) -> list[dict[str, Any]]:
    """Every task instance of those runs (the API pages by at most ``[api] maximum_page_limit``, 100)."""
    tis, offset = [], 0
    while True:
        answer = dist.client.get(
            f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances", params={"limit": 100, "offset": offset}
        )
        page = answer["task_instances"]
        tis += [ti for ti in page if ti["dag_run_id"] in run_ids]
        offset += len(page)
        if not page or offset >= answer["total_entries"]:
            return tis


# -- the tests -------------------------------------------------------------------------------------------


def test_a_rush_of_orders_all_final_each_step_on_its_queue_and_pool(dist, request):
    rush = run_rush(dist, "rush")
    assert_every_order_completed_once(dist, rush)

    services = service_of_tasks()
    tis = all_task_instances(dist, {o["order_id"] for o in rush.orders})
    assert sum(ti["task_id"] == "validate_order" for ti in tis) == RUSH_N, "not every run's task instances read"
    ran = [ti for ti in tis if ti["state"] in ("success", "failed", "up_for_retry")]
    assert ran, "no task instance ran"
    wrong = []
    for ti in ran:
        if ti["task_id"] in services:
            service, compensation = services[ti["task_id"]]
            policy = policy_for(service, compensation=compensation)
            expected = (policy.queue, policy.pool)
        else:
            expected = (topology.DEFAULT_QUEUE, "default_pool")
        if (ti["queue"], ti["pool"]) != expected:
            wrong.append((ti["dag_run_id"], ti["task_id"], ti["queue"], ti["pool"], expected))
    assert not wrong, f"task instances off their queue or pool: {wrong[:10]}"
    ran_services = {services[ti["task_id"]][0] for ti in ran if ti["task_id"] in services}
    assert ran_services == {"payment", "inventory", "shipping", "notification"}

    dist.record(request.config, "rush", {"orders": RUSH_N, "drain_s": rush.drain_s, **rush.latency_figures()})


def test_a_scheduler_killed_during_a_rush_every_order_finishes_once(dist, request):
    victim = dist.deployment.scheduler_names()[0]
    proc = dist.deployment.processes[victim]
    state: dict[str, Any] = {}

    def kill_when_a_third_is_final(final: int, rush: Rush) -> None:
        # The observable point: orders are flowing (a third final, the rest in flight).
        if "killed_at" not in state and final >= RUSH_N // 3:
            dist.deployment.processes.pop(victim)  # no longer a component the rush expects alive
            os.killpg(proc.pgid, signal.SIGKILL)
            assert wait_until_dead(proc.proc.pid, 10)
            state["killed_at"] = time.monotonic()
            state["final_at_kill"] = final
        elif "killed_at" in state and "next_final_at" not in state and final > state["final_at_kill"]:
            state["next_final_at"] = time.monotonic()

    try:
        rush = run_rush(dist, "schedkill", during=kill_when_a_third_is_final)
    finally:
        if "killed_at" in state:  # back to two schedulers for the tests after this one
            proc.proc.wait(timeout=10)
            dist.deployment.start_component(victim)
    assert "killed_at" in state, "the scheduler was never killed"
    assert_every_order_completed_once(dist, rush)
    dist.record(
        request.config,
        "scheduler_kill",
        {
            "orders": RUSH_N,
            "drain_s": rush.drain_s,
            "orders_final_at_kill": state["final_at_kill"],
            "kill_to_next_final_order_s": round(state.get("next_final_at", rush.drained) - state["killed_at"], 1),
            "kill_to_all_final_s": round(rush.drained - state["killed_at"], 1),
        },
    )


def _worker_running(dist: Distributed, task_pid: int) -> tuple[str, list[int]]:
    """The name of the harness's Celery worker whose process tree runs ``task_pid``, and the chain's pids."""
    chain = process_ancestry(task_pid)
    pgids = {p.pgid for p in chain}
    for name in dist.deployment.workers:
        proc = dist.deployment.processes[name]
        if proc.alive() and proc.pgid in pgids:
            return name, [p.pid for p in chain]
    raise AssertionError(f"ti.pid {task_pid} runs under none of this deployment's workers: {chain}")


def test_a_celery_worker_killed_during_a_payment_charges_once(dist, request):
    client = dist.client
    order = an_order()
    order_id = order["order_id"]
    # The charge takes 4 s at the service: time to kill the worker while it is in flight.
    dist.services.set_faults("payment", latency_ms=4000, seed=1)
    received_before = dist.services.received()["payment"]
    worker = ""
    try:
        response = requests.post(
            f"{dist.deployment.base_url}/orders", json=order,
            headers={"Authorization": f"Bearer {client.login()}"}, timeout=60,
        )
        assert response.status_code == 201, response.text
        run_id = response.json()["run_id"]
        client.wait_for_task_state(DAG_ID, run_id, "process_payment", {"running"}, timeout=180)
        # The synchronisation point: the charge request has reached the payment service.
        dist.services.wait_received("payment", received_before + 1, timeout=60)
        ti = client.task_instance(DAG_ID, run_id, "process_payment")
        assert (ti["state"], ti["try_number"]) == ("running", 1), ti
        assert ti["pid"], ti
        worker, chain = _worker_running(dist, ti["pid"])
        victim = dist.deployment.processes[worker]
        task = process_info(ti["pid"])
        assert task is not None
        # The whole worker dies at once, as with a lost node: its process group, and the task
        # process, which its supervisor put in a group of its own.
        killed_at, killed_wall = time.monotonic(), time.time()
        dist.deployment.processes.pop(worker)
        os.killpg(victim.pgid, signal.SIGKILL)
        if task.pgid != victim.pgid:
            os.killpg(task.pgid, signal.SIGKILL)
        assert wait_until_dead(ti["pid"], 10) and wait_until_dead(victim.proc.pid, 10)
        dist.services.clear_faults()

        # The heartbeat timeout fails the try; the retry runs on the surviving worker (both take payments).
        client.wait_for_task_state(DAG_ID, run_id, "process_payment", {"success"}, timeout=180)
        payment_done_at = time.monotonic()
        # Then the killed worker comes back, as its supervisor (Kubernetes, compose's restart) would
        # bring it: it is the only consumer of some queues.
        victim.proc.wait(timeout=10)
        dist.deployment.start_component(worker)
        dist.deployment.wait_workers_ready([worker])
        state = client.wait_for_run(DAG_ID, run_id, timeout=300)
        done_at = time.monotonic()
        tries = client.task_tries(DAG_ID, run_id, "process_payment")
    finally:
        dist.services.clear_faults()
        if worker and worker not in dist.deployment.processes:  # back to two workers for the next tests
            victim.proc.wait(timeout=10)
            dist.deployment.start_component(worker)
            dist.deployment.wait_workers_ready([worker])

    assert state == "success", dist.deployment.describe_run(DAG_ID, run_id)
    assert ledger(dist.services, order_id) == HAPPY_LEDGER
    charges = [e for e in dist.services.audit(order_id) if e["operation"] == "charge" and e["status"] == "succeeded"]
    assert len(charges) == 1, charges
    assert len(tries) >= 2 and tries[0]["state"] == "failed", tries
    retried_on = tries[-1].get("hostname")
    second_start = datetime.fromisoformat(tries[-1]["start_date"]).timestamp() if tries[-1].get("start_date") else None
    dist.record(
        request.config,
        "worker_kill",
        {
            "killed": worker,
            "charges": len(charges),
            "payment_tries": len(tries),
            "retry_started_after_kill_s": round(second_start - killed_wall, 1) if second_start else None,
            "kill_to_payment_retried_and_done_s": round(payment_done_at - killed_at, 1),
            "kill_to_order_completed_s": round(done_at - killed_at, 1),
            "retried_on_host": retried_on,
        },
    )


def test_the_services_restarted_during_a_rush_every_order_finishes_once(dist, request):
    state: dict[str, Any] = {}

    def restart_when_a_third_is_final(final: int, rush: Rush) -> None:
        if "restarted_at" not in state and final >= RUSH_N // 3:
            stopped = time.monotonic()
            dist.services.stop()
            time.sleep(2.0)  # a restart that takes a moment, as a redeploy does
            dist.services.start()
            state["restarted_at"] = time.monotonic()
            state["down_s"] = round(state["restarted_at"] - stopped, 1)
            state["final_at_restart"] = final

    rush = run_rush(dist, "svcrestart", during=restart_when_a_third_is_final)
    assert "restarted_at" in state, "the services were never restarted"
    assert_every_order_completed_once(dist, rush)
    dist.record(
        request.config,
        "services_restart",
        {
            "orders": RUSH_N,
            "drain_s": rush.drain_s,
            "services_down_s": state["down_s"],
            "orders_final_at_restart": state["final_at_restart"],
            "restart_to_all_final_s": round(rush.drained - state["restarted_at"], 1),
        },
    )
