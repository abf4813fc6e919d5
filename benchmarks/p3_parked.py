"""
P3: M orders parked in approval (Required Actions) hold no worker slot, and the order DAG's latency
with them parked against without; then the same runs under each of ``--p3-variants``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks import cpu
from benchmarks.bench import BenchBase
from benchmarks.common import BenchmarkError, median, say
from benchmarks.runs import Run
from benchmarks.settings import DAG_IDS, NOOP, ORDER, P3_VARIANTS, PARKED_STATES, SECOND_SCHEDULER


class ParkedOrders(BenchBase):
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

        idle_none = self.idle_cpu("none parked")
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
        idle_parked = self.idle_cpu(f"{waiting} parked")
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
            "idle_cpu_cores": {"none_parked": idle_none, "parked": idle_parked},
            "database": self.database_size(),
            "invalid_runs": sum(1 for d in DAG_IDS for r in seq[d] if r.problem) + failed,
        }
        say(f"P3: order latency {with_parked:.2f}s with {waiting} parked vs {baseline:.2f}s without "
            f"(x{with_parked / baseline:.2f}); no-op {with_parked_noop:.2f}s vs {baseline_noop:.2f}s; "
            f"{after['parked_waiting']} still parked")
        self.results["P3"]["variants"] = self.p3_variants(waiting, baseline, baseline_noop)

    def idle_cpu(self, label: str, seconds: float = 20.0) -> dict[str, float]:
        """
        Cores each component uses over ``seconds`` with no order moving (what open runs cost a
        deployment at rest: mostly the scheduler's examination of them, loop after loop).
        """
        before = self.cpu_snapshot()
        time.sleep(seconds)
        spent = cpu.cpu_spent(before, self.cpu_snapshot())
        cores = {name: round(value / seconds, 3) for name, value in spent.items() if name != "harness"}
        say(f"P3: at rest with {label}: scheduler {cores.get('scheduler', 0):.2f} cores, "
            f"all {cores.get('total', 0):.2f} cores")
        return cores

    def database_size(self) -> dict[str, Any]:
        """The metadata database's size, its largest tables, and bytes per DAG run it holds."""
        import psycopg2

        db = self.stack.database
        with psycopg2.connect(host=db.host, port=db.port, user=db.user, dbname=db.name) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_database_size(current_database())")
            total = cur.fetchone()[0]
            cur.execute("SELECT count(*), count(*) FILTER (WHERE dag_id = %s) FROM dag_run", (ORDER,))
            runs, order_runs = cur.fetchone()
            cur.execute("SELECT count(*) FROM task_instance")
            tis = cur.fetchone()[0]
            cur.execute("SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC LIMIT 8")
            tables = {name: size for name, size in cur.fetchall()}
        return {"bytes": total, "dag_runs": runs, "order_runs": order_runs, "task_instances": tis,
                "largest_tables_bytes": tables, "at": "after P3's sequential runs",
                "run_tables_bytes_per_run": (sum(tables.values()) / runs) if runs else None}

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
                if component == SECOND_SCHEDULER:
                    deployment.start_extra(SECOND_SCHEDULER, "scheduler", env)
                else:
                    deployment.restart(component, env)
            # A restarted scheduler's first runs pay for its cold caches (serialized DAG, imports).
            self.sequential(max(1, s.warmup), f"p3-{name}-warmup")
            seq = self.sequential(s.parked_sequential, f"p3-{name}")
            order, noop = median(r.latency for r in seq[ORDER]), median(r.latency for r in seq[NOOP])
            out[name] = {"settings": changes, ORDER: order, NOOP: noop, "ratio": order / baseline,
                         "noop_ratio": noop / baseline_noop,
                         "latencies_s": {d: [r.latency for r in rs] for d, rs in seq.items()},
                         "invalid_runs": sum(1 for d in DAG_IDS for r in seq[d] if r.problem)}
            say(f"P3 variant {name}: order {order:.2f}s (x{order / baseline:.2f}), no-op {noop:.2f}s "
                f"(x{noop / baseline_noop:.2f}) with {parked} parked")
            for component in changes:
                if component == SECOND_SCHEDULER:
                    deployment.stop_extra(SECOND_SCHEDULER)
                else:
                    deployment.restart(component)
        return out

