"""
docker-compose.yaml run for real: the stack of ``make compose-up`` on Docker, orders through
Airflow's REST API, containers killed with ``docker kill``, every claim checked on the services'
audit ledger; then the stack removed and nothing of it left.

* Twenty orders triggered through ``POST /api/v2/dags/order_processing/dagRuns`` (with the
  credentials ``scripts/compose.py up`` wrote): eighteen plain ones, one with a discontinued item
  (charged, refused by the inventory service, refunded) and one above the approval threshold,
  approved through the API (``PATCH .../hitlDetails``). While the charges are in flight the payment
  worker's container is killed, then one of the two schedulers' containers: every order ends
  final, each completed one with exactly one charge, reservation, shipment and email, the refused
  one refunded.
* The payment worker's pool follows its queue: under a rush of slow charges Celery's autoscaler
  grows it above its minimum, and shrinks it back to the minimum once the queue has drained. The
  pool sizes over time (``celery inspect stats`` in the worker's container) are printed and written
  to ``.e2e/compose-autoscale.json``.

The stack is a project of its own (``order-compose-e2e``) on free ports, with the distributed
test's settings on top of deploy/airflow-order.env (short heartbeat timeouts, policies at time
scale 0.01), given through an override file. Needs a Docker daemon (``scripts/start-docker.sh``);
``.ci/run`` runs it with ``make test-compose``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from order_services.testing import OrderServicesServer, free_port

from airflow_order_provider.operators.approval import APPROVE
from harness.client import AirflowClient
from harness.orders import HIGH_VALUE, an_order, ledger, settled
from tests.integration.test_distributed_e2e import DISTRIBUTED_SETTINGS, FINAL_STATUSES, HAPPY_LEDGER

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "order-compose-e2e"
DAG_ID = "order_processing"
AUTOSCALE_FILE = ROOT / ".e2e" / "compose-autoscale.json"
#: ORDER_WORKER_SCALE of this stack: the payment worker runs 1 to 10 processes (5-50 x 0.2).
WORKER_SCALE = "0.2"
DISCONTINUED = {"items": [{"sku": "SKU-DISCONTINUED", "quantity": 1, "unit_price": 2500}], "total_amount": 2500}
REFUNDED = [("payment", "charge", "succeeded"), ("inventory", "reserve", "failed"), ("payment", "refund", "succeeded")]

#: On top of deploy/airflow-order.env, for every Airflow container: what the distributed test runs
#: with (a dead worker found within 10 s, roomy step timeouts at time scale 0.01), and scheduler HA
#: acting within seconds (a scheduler silent for 10 s is dead; orphans adopted every 5 s).
COMPOSE_E2E_SETTINGS = {
    **DISTRIBUTED_SETTINGS,
    "AIRFLOW__ORDER_PROVIDER__TIME_SCALE": "0.01",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
    # A task the killed worker had taken from the broker but not started stays `queued` (Redis gives
    # an unacknowledged message back only after the visibility timeout, 6 h): Airflow's queued
    # timeout queues it again (600 s in deploy/airflow-order.env, 90 s here: a task is failed only
    # after three such waits, far above what a rush of 20 waits in the queue on 2 cores).
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
    # Two API server workers, as the distributed test's: four took 2.5 minutes to start on 2 cores.
    "AIRFLOW__API__WORKERS": "2",
}


def docker(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout


def compose_script(*args: str, env: dict[str, str], state_dir: Path, override: Path) -> None:
    argv = [sys.executable, str(ROOT / "scripts" / "compose.py"), *args, "--project", PROJECT,
            "--state-dir", str(state_dir), "--file", str(override)]
    result = subprocess.run(argv, cwd=ROOT, env=env)
    assert result.returncode == 0, f"{' '.join(argv)} exited with {result.returncode}"


class ComposeStack:
    def __init__(self, credentials: dict[str, str]) -> None:
        self.credentials = credentials
        self.client = AirflowClient(credentials["ui_url"], credentials["admin_user"], credentials["admin_password"],
                                    request_timeout=60)
        url = credentials["services_url"]
        host, port = url.rsplit("/", 1)[-1].split(":")
        self.services = OrderServicesServer(base_url=url, api_key=credentials["services_api_key"], host=host,
                                            port=int(port), db_path="(in the order-services container)")

    def container(self, service: str, number: int = 1) -> str:
        ids = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}",
                     "--filter", f"label=com.docker.compose.service={service}",
                     "--filter", f"label=com.docker.compose.container-number={number}").split()
        assert len(ids) == 1, f"{service} #{number}: containers {ids}"
        return ids[0]

    def containers(self, service: str) -> list[str]:
        return docker("ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}",
                      "--filter", f"label=com.docker.compose.service={service}").split()

    def state(self, container: str) -> dict[str, Any]:
        return json.loads(docker("inspect", "--format", "{{json .State}}", container))

    def wait_running(self, container: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(container)
            health = state.get("Health", {}).get("Status", "healthy")
            if state["Status"] == "running" and health == "healthy":
                return
            assert time.monotonic() < deadline, f"{container} not running and healthy after {timeout}s: {state}"
            time.sleep(2)

    def statuses(self, since: datetime) -> dict[str, str]:
        answer = self.client.get("/orders", params={"since": since.isoformat(), "limit": 500})
        return {o["order_id"]: o["status"] for o in answer["orders"]}

    def logs(self, service: str, tail: int = 60) -> str:
        out = []
        for cid in self.containers(service):
            result = subprocess.run(["docker", "logs", "--tail", str(tail), cid], capture_output=True, text=True)
            out.append(f"--- {service} {cid[:12]}\n{result.stdout[-6000:]}{result.stderr[-6000:]}")
        return "\n".join(out)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    state_dir = tmp_path_factory.mktemp("compose-state")
    override = state_dir / "e2e-settings.yaml"
    services = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    override.write_text(yaml.safe_dump({
        "services": {name: {"environment": COMPOSE_E2E_SETTINGS} for name in services if name.startswith("airflow-")},
    }))
    env = {
        **os.environ,
        "ORDER_UI_PORT": str(free_port()),
        "ORDER_SERVICES_PORT": str(free_port()),
        "ORDER_WORKER_SCALE": WORKER_SCALE,
    }
    started = time.monotonic()
    try:
        compose_script("up", env=env, state_dir=state_dir, override=override)
        report = f"[compose] stack up in {time.monotonic() - started:.0f}s"
        print(report)
        credentials = json.loads((state_dir / "credentials.json").read_text())
        assert set(credentials) == {"ui_url", "admin_user", "admin_password", "services_url", "services_api_key"}
        deployed = ComposeStack(credentials)
        deployed.client.unpause(DAG_ID)
        yield deployed
        if request.session.testsfailed:
            for service in ("airflow-scheduler", "airflow-worker-payment", "airflow-triggerer"):
                sys.stderr.write(deployed.logs(service) + "\n")
    finally:
        down_started = time.monotonic()
        compose_script("down", env=env, state_dir=state_dir, override=override)
        print(f"[compose] stack removed in {time.monotonic() - down_started:.0f}s")
        label = f"label=com.docker.compose.project={PROJECT}"
        for kind in (("ps", "-aq"), ("volume", "ls", "-q"), ("network", "ls", "-q")):
            assert not docker(*kind, "--filter", label).split(), f"docker {' '.join(kind)}: left behind"


#: Each forward step and the undo that settles it.
UNDOES = {("payment", "charge"): ("payment", "refund"), ("inventory", "reserve"): ("inventory", "release"),
          ("shipping", "schedule"): ("shipping", "cancel")}


def outstanding(entries: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """The forward steps of a ledger that succeeded and were not undone (a charge never refunded...)."""
    done = [(service, op) for service, op, status in entries if status == "succeeded"]
    return [step for step, undo in UNDOES.items() if done.count(step) > done.count(undo)]


# -- twenty orders with kills --------------------------------------------------------------------------


def test_twenty_orders_through_the_api_with_a_payment_worker_and_a_scheduler_killed(stack):
    client, services = stack.client, stack.services
    plain = [an_order(customer_tier="premium" if i % 5 == 0 else "standard") for i in range(18)]
    refused, approved = an_order(**DISCONTINUED), an_order(**HIGH_VALUE)
    orders = [*plain, refused, approved]
    # Each charge takes 1.5 s at the service: charges are in flight when the worker dies.
    services.set_faults("payment", latency_ms=1500, seed=1)
    received_before = services.received()["payment"]
    since = datetime.now(timezone.utc)
    run_ids = {o["order_id"]: client.trigger(DAG_ID, o, run_id=f"compose-{o['order_id']}") for o in orders}
    events: dict[str, Any] = {}
    try:
        # The synchronisation point: three charges have reached the payment service.
        services.wait_received("payment", received_before + 3, timeout=300)
        worker = stack.container("airflow-worker-payment")
        docker("kill", worker)
        events["payment_worker_killed"] = time.monotonic()
        scheduler = stack.container("airflow-scheduler", 1)
        docker("kill", scheduler)
        events["scheduler_killed"] = time.monotonic()
        services.clear_faults()
        # The worker comes back, as compose's restart policy brings a crashed one (docker kill
        # counts as a stop by hand, which it leaves alone); the scheduler stays dead.
        if stack.state(worker)["Status"] != "running":
            docker("start", worker)
        stack.wait_running(worker)
        events["payment_worker_back"] = time.monotonic()

        approval_run = run_ids[approved["order_id"]]
        client.wait_for_task_state(DAG_ID, approval_run, "approve_order", {"awaiting_input", "deferred"}, timeout=600)
        deadline = time.monotonic() + 300
        while not [d for d in client.hitl_details(DAG_ID, approval_run) if not d.get("response_received")]:
            assert time.monotonic() < deadline, "no approval request listed"
            time.sleep(1)
        client.respond(DAG_ID, approval_run, "approve_order", [APPROVE])

        deadline = time.monotonic() + 1200
        while True:
            statuses = {k: v for k, v in stack.statuses(since).items() if k in run_ids}
            if len(statuses) == len(orders) and all(s in FINAL_STATUSES for s in statuses.values()):
                break
            assert time.monotonic() < deadline, f"orders not final: {statuses}"
            time.sleep(2)
        events["all_final"] = time.monotonic()
    finally:
        services.clear_faults()
        for cid in docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}",
                          "--filter", "label=com.docker.compose.service=airflow-scheduler").split():
            if stack.state(cid)["Status"] != "running":
                docker("start", cid)  # two schedulers again for the next test

    # The refused order is refunded; the approved one ships once.
    assert statuses[refused["order_id"]] == "cancelled", statuses
    assert settled(ledger(services, refused["order_id"])) == REFUNDED
    assert statuses[approved["order_id"]] == "completed", statuses
    assert ledger(services, approved["order_id"]) == HAPPY_LEDGER
    # A plain order completes with exactly one charge, reservation, shipment and email. The kills
    # may also end one: a task that dies with its worker (any task on the payment worker's queues)
    # is retried, but one with no retry left fails the order, which then must owe nothing.
    wrong, not_completed = {}, {}
    for order in plain:
        entries = ledger(services, order["order_id"])
        if statuses[order["order_id"]] == "completed":
            if entries != HAPPY_LEDGER:
                wrong[order["order_id"]] = entries
        else:
            not_completed[order["order_id"]] = (statuses[order["order_id"]], entries)
            if undone := outstanding(entries):
                wrong[order["order_id"]] = f"{statuses[order['order_id']]}, not undone: {undone}"
    assert not wrong, f"ledger not exact: {wrong}"
    # ... and only an order whose task the kill took ends so (Airflow logged its heartbeat timeout).
    not_by_the_kill = [k for k in not_completed
                       if not client.event_logs(event="heartbeat timeout", dag_id=DAG_ID, run_id=run_ids[k])]
    assert not not_by_the_kill, (
        f"orders not completed, but no task of theirs died with the worker: "
        f"{ {k: not_completed[k] for k in not_by_the_kill} }; "
        f"their tasks: { {k: client.task_states(DAG_ID, run_ids[k]) for k in not_by_the_kill[:3]} }; "
        f"what Airflow logged of them: { {k: failure_events(client, run_ids[k]) for k in not_by_the_kill[:3]} }"
    )
    tries = client.task_tries(DAG_ID, approval_run, "approve_order")
    assert client.xcom(DAG_ID, approval_run, "approve_order")  # the answer was recorded
    retried: dict[str, int] = {}  # task id -> orders in which it took more than one try
    for run_id in run_ids.values():
        for ti in client.task_instances(DAG_ID, run_id):
            if (ti.get("try_number") or 0) > 1:
                retried[ti["task_id"]] = retried.get(ti["task_id"], 0) + 1
    start = events["payment_worker_killed"]
    print(f"\n[compose] 20 orders: payment worker killed, back after {events['payment_worker_back'] - start:.0f}s; "
          f"scheduler killed; all final {events['all_final'] - start:.0f}s after the kill; "
          f"tasks tried twice or more (orders): {retried}; approval tries {len(tries)}; "
          f"orders ended by the kills (nothing owed): {not_completed}")


def failure_events(client, run_id: str) -> list[tuple]:
    """The run's audit-log entries other than a task's start and success: how a task was failed."""
    return [(e.get("event"), e.get("task_id"), e.get("try_number"), (e.get("extra") or "")[:200])
            for e in client.event_logs(dag_id=DAG_ID, run_id=run_id)
            if e.get("event") not in ("running", "success", "trigger", "skipped")]


# -- the payment worker's pool follows its queue ------------------------------------------------------------

SAMPLER = r"""
import json, sys, time
import redis
from airflow.configuration import conf
from airflow.providers.celery.executors.celery_executor import app
dest = sys.argv[1]
broker = redis.Redis.from_url(conf.get("celery", "broker_url"))
while True:
    stats = (app.control.inspect(destination=[dest], timeout=3.0).stats() or {}).get(dest) or {}
    # No answer within the timeout (a busy worker): processes None, not 0.
    processes = len(stats["pool"]["processes"]) if stats.get("pool") else None
    print(json.dumps({"t": time.time(), "processes": processes,
                      "queued": broker.llen("payment"), "autoscaler": stats.get("autoscaler")}), flush=True)
    time.sleep(1.0)
"""


class PoolSampler:
    """``celery inspect stats`` of the payment worker every second or so, from inside its container."""

    def __init__(self, container: str) -> None:
        hostname = docker("inspect", "--format", "{{.Config.Hostname}}", container).strip()
        self.proc = subprocess.Popen(["docker", "exec", "-i", container, "python", "-c", SAMPLER, f"celery@{hostname}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.samples: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                sample = json.loads(line)
            except ValueError:
                continue
            if sample["processes"] is not None:
                self.samples.append(sample)

    def wait_for(self, predicate, what: str, timeout: float, since: float = 0.0) -> dict[str, Any]:
        """The first sample taken at ``since`` (a time.time()) or later that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for sample in self.samples[seen:]:
                if sample["t"] >= since and predicate(sample):
                    return sample
            seen = max(seen, len(self.samples) - 1)
            assert self.proc.poll() is None, f"the sampler exited: {self.proc.stderr.read()[-2000:]}"
            time.sleep(0.5)
        raise AssertionError(f"{what}: not seen in {timeout:.0f}s; last samples {self.samples[-5:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def test_the_payment_workers_pool_grows_with_its_queue_and_shrinks_when_it_drains(stack):
    client, services = stack.client, stack.services
    worker = stack.container("airflow-worker-payment")
    stack.wait_running(worker)
    sampler = PoolSampler(worker)
    try:
        idle = sampler.wait_for(lambda s: s["autoscaler"] is not None, "the autoscaler's stats", 120)
        high, low = idle["autoscaler"]["max"], idle["autoscaler"]["min"]
        assert (high, low) == (10, 1), idle  # the table's 50,5 x ORDER_WORKER_SCALE 0.2
        quiet = sampler.wait_for(lambda s: s["processes"] == low, "the pool at its minimum before the rush", 300,
                                 since=time.time())
        # A rush of slow charges: 20 orders, each charge 2 s at the service.
        services.set_faults("payment", latency_ms=2000, seed=2)
        orders = [an_order() for _ in range(20)]
        since = datetime.now(timezone.utc)
        rush_started = time.time()
        for order in orders:
            client.trigger(DAG_ID, order, run_id=f"compose-scale-{order['order_id']}")
        grown = sampler.wait_for(lambda s: s["processes"] > low, "the pool growing above its minimum", 600,
                                 since=rush_started)
        deadline = time.monotonic() + 900
        while True:
            statuses = {k: v for k, v in stack.statuses(since).items() if k in {o["order_id"] for o in orders}}
            if len(statuses) == len(orders) and all(s in FINAL_STATUSES for s in statuses.values()):
                break
            assert time.monotonic() < deadline, f"orders not final: {statuses}"
            time.sleep(2)
        drained_at = time.time()
        services.clear_faults()
        shrunk = sampler.wait_for(lambda s: s["processes"] == low and s["queued"] == 0,
                                  "the pool back at its minimum after the queue drained", 300, since=drained_at)
    finally:
        services.clear_faults()
        sampler.stop()
    peak = max(s["processes"] for s in sampler.samples)
    timeline = [{"s": round(s["t"] - rush_started, 1), "processes": s["processes"], "queued": s["queued"]}
                for s in sampler.samples if s["t"] >= quiet["t"]]
    AUTOSCALE_FILE.parent.mkdir(parents=True, exist_ok=True)
    AUTOSCALE_FILE.write_text(json.dumps({"autoscale": f"{high},{low}", "orders": len(orders), "peak": peak,
                                          "grew_after_s": round(grown["t"] - rush_started, 1),
                                          "drained_after_s": round(drained_at - rush_started, 1),
                                          "back_to_min_after_s": round(shrunk["t"] - rush_started, 1),
                                          "timeline": timeline}, indent=1) + "\n")
    changes = [f"{t['s']:+.0f}s {t['processes']}p/{t['queued']}q" for i, t in enumerate(timeline)
               if i == 0 or (t["processes"], t["queued"]) != (timeline[i - 1]["processes"], timeline[i - 1]["queued"])]
    print(f"\n[compose] payment worker autoscale {high},{low}: peak {peak} processes; grew {grown['t'] - rush_started:.0f}s "
          f"after the rush began, orders final at {drained_at - rush_started:.0f}s, back to {low} at "
          f"{shrunk['t'] - rush_started:.0f}s\n[compose] pool/queue changes: {' '.join(changes)}")
    for order in orders:
        assert ledger(services, order["order_id"]) == HAPPY_LEDGER, order["order_id"]
    assert low < peak <= high
