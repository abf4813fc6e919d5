"""
P1 and P2, in rounds: K runs one at a time per DAG (latency), and bursts of N runs per DAG (drain
rate, CPU per run, how long each task held its executor slot), also at Airflow's default heartbeat interval.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks import cpu, slots
from benchmarks.bench import BenchBase
from benchmarks.common import median, say
from benchmarks.runs import Run
from benchmarks.settings import (
    AIRFLOW_DEFAULT_HEARTBEAT_INTERVAL,
    DAG_IDS,
    HEARTBEAT_INTERVAL,
    LONG_TASK,
    NOOP,
    ORDER,
)


class Rounds(BenchBase):
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

