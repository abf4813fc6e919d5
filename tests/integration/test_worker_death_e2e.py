"""
Worker death on a real Airflow: the process running ``process_payment`` is SIGKILLed while its
charge is in flight, nothing reports the death, and the heartbeat timeout is what notices it.

How a task runs on Airflow 3.3's LocalExecutor (read from the installed source)::

    airflow scheduler                               the harness's process group (pgid = its pid)
      `- airflow worker -- LocalExecutor: <task>   a worker forked by the executor; it runs the
           |                                        task's *supervisor* in-process
           |                                        (BaseExecutor.run_workload -> supervise_task)
           `- airflow worker -- <ti id>            the *task process*, forked by the supervisor in
                                                    its own process group; it runs execute()

``ti.pid`` (REST API ``pid``) is the task process: the supervisor reports ``self.pid``, the forked
child's pid, in ``PATCH /execution/task-instances/{id}/run`` and in every heartbeat
(supervisor.py, ``_on_child_started`` and ``_send_heartbeat_if_needed``). The supervisor is its
parent. Only the supervisor talks to the API server (state changes, heartbeats), so killing it
first, then the task process, both with SIGKILL, leaves nobody to report anything: the task
instance stays ``running`` until the scheduler finds it has not heartbeated for
``[scheduler] task_instance_heartbeat_timeout`` (10 s in this suite), fails that try, and the step
is retried under its retry policy.

The ledger must show exactly one charge. The retry uses the same idempotency key, so a first call
that reached the service is replayed, not carried out again. With the reference services the cut-off
call is in fact never carried out: their injected latency comes before the request body is read,
and the service drops a request whose client went away. The test reports which try charged.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import datetime, timezone

import pytest

from harness import (
    ProcessInfo,
    process_ancestry,
    process_info,
    report,
    tail,
    wait_until_dead,
)
from harness.orders import an_order, ledger

pytestmark = pytest.mark.integration

DAG_ID = "order_processing"
TASK_ID = "process_payment"
RUN_TIMEOUT = 180.0
#: The payment service answers after 4 s; the step's timeout is 5 s (30 s x 0.01, never below 5 s).
LATENCY_MS = 4000
#: How long the charge has been in flight when the worker dies.
IN_FLIGHT_BEFORE_KILL = 1.0
SUPERVISOR_TITLE = "airflow worker -- LocalExecutor"
DETECTED_LOG_LINE = "Detected a task instance without a heartbeat"



def _setting(airflow_env, key: str) -> float:
    return float(airflow_env.deployment.extra_env[key])


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    except OSError:
        pass
    return inodes


def established_connections_to(pid: int, port: int) -> int:
    """How many ESTABLISHED TCP connections process ``pid`` has open to ``port`` (from /proc)."""
    inodes = _socket_inodes(pid)
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def find_step_processes(airflow_env, ti: dict) -> tuple[ProcessInfo, ProcessInfo]:
    """The task process (``ti.pid``) and its supervisor, checked to belong to this deployment's scheduler."""
    scheduler = airflow_env.deployment.processes["scheduler"]
    scheduler_pid, scheduler_pgid = scheduler.proc.pid, scheduler.pgid
    task = process_info(ti["pid"])
    assert task is not None, f"ti.pid {ti['pid']} is not a process on this machine"
    supervisor = process_info(task.ppid)
    assert supervisor is not None, f"the parent {task.ppid} of ti.pid {task.pid} is gone"
    chain = process_ancestry(task.pid)
    described = " <- ".join(f"{p.pid} [{p.cmdline[:60]}] pgid={p.pgid}" for p in chain)
    # Never anything but a task and its supervisor, and only this deployment's.
    assert task.cmdline == f"airflow worker -- {ti['id']}", f"ti.pid is not the task process: {described}"
    assert supervisor.cmdline.startswith(SUPERVISOR_TITLE), f"ti.pid's parent is no supervisor: {described}"
    assert supervisor.ppid == scheduler_pid and supervisor.pgid == scheduler_pgid, (
        f"the supervisor is not a LocalExecutor worker of the scheduler {scheduler_pid}: {described}"
    )
    assert scheduler_pid not in (task.pid, supervisor.pid)
    assert task.pgid == task.pid, f"the task process should lead its own process group: {described}"
    return task, supervisor


def wait_for_call_in_flight(client, order_services, run_id: str, timeout: float = 60.0) -> dict:
    """The running task instance once its task process has the charge request open to the service."""
    client.wait_for_task_state(DAG_ID, run_id, TASK_ID, {"running"}, timeout=RUN_TIMEOUT)
    deadline = time.monotonic() + timeout
    while True:
        ti = client.task_instance(DAG_ID, run_id, TASK_ID)
        assert (ti["state"], ti["try_number"]) == ("running", 1), ti
        if ti.get("pid"):
            if established_connections_to(ti["pid"], order_services.port):
                return ti
        assert time.monotonic() < deadline, f"{TASK_ID} never had its call in flight: {ti}"
        time.sleep(0.1)


def test_a_worker_killed_mid_charge_is_detected_by_heartbeat_timeout_and_retried(
    client, airflow_env, order_services, request
):
    heartbeat_timeout = _setting(airflow_env, "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT")
    detection_interval = _setting(
        airflow_env, "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL"
    )
    heartbeat_interval = _setting(airflow_env, "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL")
    order = an_order()
    order_id = order["order_id"]

    order_services.set_faults("payment", latency_ms=LATENCY_MS, seed=1)
    try:
        run_id = client.trigger(DAG_ID, order, run_id=f"e2e-worker-death-{order_id}")
        ti = wait_for_call_in_flight(client, order_services, run_id)
        time.sleep(IN_FLIGHT_BEFORE_KILL)
        task, supervisor = find_step_processes(airflow_env, ti)
        assert ti["try_number"] == 1 and ti["hostname"] in (socket.getfqdn(), socket.gethostname()), ti
        assert established_connections_to(task.pid, order_services.port), "the charge is no longer in flight"
        assert ledger(order_services, order_id) == [], "the charge was answered before the kill"

        # The supervisor first: once it is gone nobody can tell the API server anything.
        os.kill(supervisor.pid, signal.SIGKILL)
        os.kill(task.pid, signal.SIGKILL)
        killed_at = datetime.now(timezone.utc)
        killed_mono = time.monotonic()
    finally:
        order_services.clear_faults()
    assert wait_until_dead(supervisor.pid) and wait_until_dead(task.pid), (
        "the step's processes survived SIGKILL"
    )

    # Nobody reported anything: the try stays running until the heartbeat timeout fails it.
    while (state := client.task_instance(DAG_ID, run_id, TASK_ID)) and (
        state["state"] == "running" and state["try_number"] == 1
    ):
        assert time.monotonic() - killed_mono < heartbeat_timeout * 3 + 30, f"never detected: {state}"
        time.sleep(0.2)
    left_running_after = time.monotonic() - killed_mono

    assert client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT) == "success", airflow_env.describe_run(
        DAG_ID, run_id
    )
    finished_after = time.monotonic() - killed_mono
    ti = client.task_instance(DAG_ID, run_id, TASK_ID)
    assert (ti["state"], ti["try_number"]) == ("success", 2), ti

    # The heartbeat timeout was the detector: its audit-log entry for try 1, and the scheduler's log.
    (timed_out,) = client.event_logs(dag_id=DAG_ID, run_id=run_id, task_id=TASK_ID, event="heartbeat timeout")
    assert timed_out["try_number"] == 1, timed_out
    assert f"({int(heartbeat_timeout)} seconds)" in timed_out["extra"], timed_out
    detection = (datetime.fromisoformat(timed_out["when"]) - killed_at).total_seconds()
    scheduler_log = tail(airflow_env.deployment.processes["scheduler"].log_path, 5000)
    detected = [line for line in scheduler_log.splitlines() if DETECTED_LOG_LINE in line and run_id in line]
    assert detected and TASK_ID in detected[0], (
        f"the scheduler log does not say it detected {TASK_ID} of {run_id} without a heartbeat"
    )
    # Not sooner than the heartbeat timeout allows (the last heartbeat came at most one heartbeat
    # interval before the kill), nor much later than timeout + one detection pass.
    assert (
        heartbeat_timeout - heartbeat_interval - 1 <= detection <= heartbeat_timeout + detection_interval + 10
    ), detection

    # Try 1 was the process that was killed, on this machine.
    first_try = next(t for t in client.task_tries(DAG_ID, run_id, TASK_ID) if t["try_number"] == 1)
    assert first_try["pid"] == task.pid, (first_try, task)

    # One charge: the retry used the same idempotency key as the call cut off by the kill.
    assert ledger(order_services, order_id) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("notification", "email", "succeeded"),
    ]
    (charge,) = [e for e in order_services.audit(order_id) if e["operation"] == "charge"]
    assert charge["idempotency_key"] == f"{order_id}:payment.charge", charge
    second_try_start = datetime.fromisoformat(ti["start_date"])
    charged_by = "try 2" if datetime.fromisoformat(charge["created_at"]) >= second_try_start else "try 1"

    report(
        request.config,
        f"worker death: killed supervisor {supervisor.pid} and task process {task.pid} (ti.pid) of "
        f"{TASK_ID} try 1, {IN_FLIGHT_BEFORE_KILL:g}s into its {LATENCY_MS} ms charge; heartbeat timeout "
        f"{heartbeat_timeout:g}s (heartbeats every {heartbeat_interval:g}s, checked every {detection_interval:g}s) "
        f"detected it after {detection:.1f}s (try 1 left 'running' after {left_running_after:.1f}s); "
        f"run succeeded {finished_after:.1f}s after the kill; one charge, made by {charged_by}",
    )
