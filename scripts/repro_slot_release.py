"""
Reproduce, on plain Airflow, a finished task holding its executor slot for up to
``[workers] min_heartbeat_interval`` (docs/slot-release.md).

Needs only apache-airflow 3.x in the running interpreter's environment (no provider, no other
service): it makes a temporary AIRFLOW_HOME, writes a DAG of 10 chained no-op PythonOperator tasks,
starts ``airflow standalone`` (SQLite, LocalExecutor, Airflow's defaults otherwise) in its own
process group, triggers 3 runs, waits for them, stops Airflow and compares, per task, the
supervisor's ``Workload finished ... duration=`` (when it let the slot go) with the task's own span
in the metadata database.

    python scripts/repro_slot_release.py                 # Airflow's default interval (5 s)
    python scripts/repro_slot_release.py --interval 1    # AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=1

On Airflow 3.3.2 with the default, a share of the tasks hold their slot about 5 s past their span;
with --interval 1, about 1 s at most. Exit status 0 either way (it reports; it does not judge).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

DAG_ID = "slot_release_repro"
DAG_FILE = f'''
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, chain

# Retries only so that a task that could not reach a busy API server (SQLite) is run again.
with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         default_args={{"retries": 3, "retry_delay": timedelta(seconds=2)}}):
    chain(*[PythonOperator(task_id=f"noop_{{i}}", python_callable=lambda: None) for i in range(10)])
'''
WORKLOAD = re.compile(r"Workload finished\b.*?\bduration=(?P<d>[0-9.]+).*?\bworkload_id=(?P<id>[0-9a-f-]{36})")


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=int, default=None,
                        help="[workers] min_heartbeat_interval (default: Airflow's own, 5)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary AIRFLOW_HOME")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="slot-release-repro-"))
    (home / "dags").mkdir()
    (home / "dags" / f"{DAG_ID}.py").write_text(DAG_FILE)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
    })
    if args.interval is not None:
        env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] = str(args.interval)
    db = home / "airflow.db"
    log_path = home / "standalone.log"
    print(f"AIRFLOW_HOME {home}; interval {args.interval if args.interval is not None else 'default'}", flush=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["airflow", "standalone"], env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + args.timeout
        while not _query(db, "select 1 from dag where dag_id = ? and is_stale = 0", DAG_ID):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the DAG was not parsed; see {log_path}")
            time.sleep(2)
        while not _api_ready(port):  # the first task would fail to reach the execution API
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the API server did not come up; see {log_path}")
            time.sleep(2)
        for i in range(args.runs):
            subprocess.run(["airflow", "dags", "trigger", DAG_ID, "--run-id", f"repro-{i}"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        while True:
            done = _query(db, "select count(*) from dag_run where dag_id = ? and state in ('success', 'failed')",
                          DAG_ID)[0][0]
            if done >= args.runs:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{done} of {args.runs} runs finished; see {log_path}")
            time.sleep(2)
        time.sleep(8)  # the last supervisors log "Workload finished" when they let their slot go
    finally:
        gone = (ProcessLookupError, PermissionError, subprocess.TimeoutExpired)
        with contextlib.suppress(*gone):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        with contextlib.suppress(*gone):
            os.killpg(proc.pid, signal.SIGKILL)

    spans = {row[0].replace("-", ""): (_ts(row[2]) - _ts(row[1]))
             for row in _query(db, "select id, start_date, end_date from task_instance where dag_id = ? "
                                   "and start_date is not null and end_date is not null", DAG_ID)}
    by_task: dict[str, list[float]] = {}
    for match in WORKLOAD.finditer(log_path.read_text(errors="replace")):
        by_task.setdefault(match["id"].replace("-", ""), []).append(float(match["d"]))
    held, workloads = [], []
    for ti_id, durations in by_task.items():  # tasks that ran once: a retried one has one span, several slots
        if len(durations) == 1 and ti_id in spans:
            workloads.append(durations[0])
            held.append(durations[0] - spans[ti_id])
    if not held:
        print(f"no 'Workload finished' line matched a task; see {log_path}")
        return 1
    held.sort()
    workloads.sort()
    p95 = workloads[max(0, -(-len(workloads) * 95 // 100) - 1)]
    print(f"{len(held)} tasks of {len(spans)}: supervisor's workload duration median "
          f"{statistics.median(workloads):.2f}s, p95 {p95:.2f}s, max {workloads[-1]:.2f}s; "
          f"{sum(w > 2 for w in workloads)} over 2 s; held beyond the task's own span: median "
          f"{statistics.median(held):.2f}s, max {held[-1]:.2f}s, {sum(h > 2 for h in held)} held over 2 s")
    if args.keep:
        print(f"kept {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def _query(db: Path, sql: str, *params) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # tables not there yet, or the database busy
        return []


def _api_ready(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
