"""
Benchmarks: the order DAG against a no-op DAG of the same shape, on one real Airflow.

    python -m benchmarks.run                      # make bench: full run, writes docs/benchmarks.*
    python -m benchmarks.run --profile deploy/low-latency.env   # docs/benchmarks-low-latency.*
    python -m benchmarks.run --smoke              # make bench-smoke: tiny numbers, a temp dir, for CI
    python -m benchmarks.run --only P1,P4 --sequential 3

Brings up, on 127.0.0.1 and with the harness the end-to-end tests use too (``harness/``): the
reference order services (``order_services.testing.start_order_services``), a
fresh PostgreSQL database, and an Airflow 3 (api-server, scheduler, dag-processor, triggerer;
LocalExecutor) whose DAGs folder holds copies of ``dags/order_processing.py`` and of
``benchmarks/dags/order_shape_noop.py`` (the same 14 tasks, every one a no-op PythonOperator).

Configuration, lowest precedence first: the harness's own settings, ``[order_provider] time_scale``
= 1 (a deployment's real timeouts: the harness shrinks them 100x for tests, which would let a
loaded machine time orders out), ``deploy/airflow-order.env``, then ``--profile FILE``. Both DAGs
run on the same Airflow with the same settings; the test suite's E2E_DEPLOYMENT_SETTINGS are not applied.

Measurements (each DAG alternately, to share the machine's noise):

* P1 ``--sequential K``: K runs one at a time per DAG; latency = ``end_date - queued_at`` of the
  run (REST API). Ratio of the medians, order / no-op; goal <= 1.05.
* P2 ``--burst N``: N runs triggered at once (threads) per DAG, one DAG after the other; drain
  rate = N / (last end_date - first queued_at) in runs/min. Ratio order / no-op; goal >= 0.9.
  The services' pools are sized to the executor's parallelism, so that only the orchestration's
  cost is measured, not the policy table's throttle (5/10/3/2 slots); ``--pool-slots 0`` keeps it.
  P1 and P2 are repeated ``--rounds R`` times; the reported value is the median of the rounds.
* P3 ``--parked M``: M orders above the approval threshold wait in ``approve_order`` (Required
  Actions); task instances ``running`` among their runs are counted (goal 0: no worker slot), the
  pools' slots are reported; then ``--parked-sequential`` (3) runs one at a time per DAG with
  them parked. Ratio of the order DAG's median latency with them parked to P1's without; goal
  <= 1.2. They stay parked (the teardown drops the database).
* P4: parse time of each DAG file: Airflow's own figure, the DAG's ``last_parse_duration`` (the
  DAG processor's whole processing of the file, as the UI shows it; 7 parses per file), ratio of
  medians, goal <= 1.5; beside it, the in-process part alone (``benchmarks/parse_probe.py``, what
  the parsing child does after the fork: executing the file and serializing its DAG; a fresh
  interpreter per measurement, 7 per file alternately) with its breakdown.
* P5: ``PaymentHook.get_charge`` against the same ``GET`` with ``requests`` on loopback
  (``benchmarks/hook_probe.py``, 200 calls each, interleaved); overhead of the medians; goal <= 5 ms.
  The same GET with one ``httpx.Client`` is timed beside it (reported, not the baseline).

Every happy order must end ``success`` with exactly one charge, reservation, shipment and email
in the services' audit ledger; every no-op run must end ``success``. A run that does not makes
that measurement INVALID and the exit status 1 (the measurement goes on). Exit status 0 means
every measurement was valid, not that the goals are met (``--fail-on-goals`` for that).

Output: a table on stdout, and ``docs/benchmarks[-PROFILE].md`` (with date, command, machine,
load, Airflow version, profile), ``.json`` (raw numbers) and ``.png`` (matplotlib chart).
Every process started runs in its own process group and is stopped by its id at the end, also
on Ctrl-C or SIGTERM; the database is dropped.

This module is the command line; the rest of ``benchmarks/``: ``settings.py`` (the DAGs, the goals,
the P3 variants' table, :class:`Settings`), ``stack.py`` (services, database, Airflow up and down),
``runs.py`` and ``bench.py`` (a run; triggering, waiting, checking ledgers), one module per measure
(``p1_p2_rounds.py``, ``p3_parked.py``, ``p4_parse.py``, ``p5_hook.py``), ``report.py`` and
``chart.py`` (the table, the md/json report, the png).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench import BenchBase
from benchmarks.common import BenchmarkError, say
from benchmarks.p1_p2_rounds import Rounds
from benchmarks.p3_parked import ParkedOrders
from benchmarks.p4_parse import ParseTimes
from benchmarks.p5_hook import HookOverhead
from benchmarks.report import format_table, table_rows, write_report
from benchmarks.settings import ALL_PS, P3_VARIANTS, Settings, verdict
from benchmarks.stack import Stack
from harness.common import HarnessError


class Bench(Rounds, ParkedOrders, ParseTimes, HookOverhead, BenchBase):
    """Every measure on one stack, in the order that keeps them apart."""

    def measure(self) -> None:
        s = self.settings
        if {"P1", "P2"} & set(s.only) or "P3" in s.only:
            self.warm_up()
        if {"P1", "P2"} & set(s.only):
            self.rounds()
        # Before P3, which leaves M runs open in the database.
        if "P4" in s.only:
            self.parse_times()
        if "P5" in s.only:
            self.hook_overhead()
        if "P3" in s.only:
            self.parked()


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=None, help="K runs one at a time per DAG (P1, P3); 6")
    parser.add_argument("--burst", type=int, default=None, help="N runs at once per DAG (P2); 100")
    parser.add_argument("--parked", type=int, default=None, help="M orders parked in approval (P3); 500")
    parser.add_argument("--parked-sequential", type=int, default=None,
                        help="runs one at a time per DAG with them parked (P3); 3")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of P1 and P2; the median is reported; 3")
    parser.add_argument("--parse-processes", type=int, default=None, help="fresh processes per DAG file (P4); 7")
    parser.add_argument("--hook-calls", type=int, default=None, help="calls of each kind (P5); 200")
    parser.add_argument("--warmup", type=int, default=None, help="runs per DAG before measuring, not counted; 1")
    parser.add_argument("--no-default-interval", action="store_true",
                        help="P2: skip the extra bursts with Airflow's default [workers] min_heartbeat_interval")
    parser.add_argument("--long-task", type=int, default=None,
                        help="P2: seconds of a task run beside each order burst (heartbeat cost); 0 skips; 60")
    parser.add_argument("--p3-variants", default=None,
                        help=f"P3: comma-separated settings to measure with the same orders parked, of "
                             f"{','.join(P3_VARIANTS)}; shipped,batch20")
    parser.add_argument("--only", default=None, help="comma-separated subset of P1,P2,P3,P4,P5")
    parser.add_argument("--pool-slots", type=int, default=None,
                        help="size the order_<service> pools to this many slots; 0 keeps the policy table's "
                             "5/10/3/2 (default: the executor's parallelism, so that they do not bind)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="env file of Airflow settings loaded on top of deploy/airflow-order.env")
    parser.add_argument("--smoke", action="store_true",
                        help="K=1 N=3 M=30, one round, fewer parses and calls; writes to a temp dir (CI)")
    parser.add_argument("--out-dir", type=Path, default=None, help="where to write the report (default docs/)")
    parser.add_argument("--keep", action="store_true", help="keep the AIRFLOW_HOME (logs) afterwards")
    parser.add_argument("--fail-on-goals", action="store_true", help="exit 2 when a goal is missed")
    args = parser.parse_args(argv)

    s = Settings()
    if args.smoke:
        # P3 with 30 parked: enough open runs to exceed the scheduler's batch of 20 per loop.
        s.sequential, s.burst, s.parked, s.rounds, s.parse_processes, s.hook_calls = 1, 3, 30, 1, 2, 30
        s.parked_sequential = 1
        s.long_task_s = 0
        s.smoke = True
    for name in ("sequential", "burst", "parked", "parked_sequential", "rounds", "parse_processes", "hook_calls",
                 "warmup"):
        value = getattr(args, name)
        if value is not None:
            if value < (0 if name == "warmup" else 1):
                parser.error(f"--{name.replace('_', '-')} must be positive")
            setattr(s, name, value)
    if args.only:
        wanted = tuple(p.strip().upper() for p in args.only.split(",") if p.strip())
        unknown = [p for p in wanted if p not in ALL_PS]
        if unknown:
            parser.error(f"--only: unknown {unknown}; choose from {','.join(ALL_PS)}")
        s.only = tuple(p for p in ALL_PS if p in wanted)
    if args.profile:
        s.profile = args.profile if args.profile.is_absolute() else Path.cwd() / args.profile
        if not s.profile.is_file():
            parser.error(f"--profile {args.profile}: no such file")
    if args.out_dir:
        s.out_dir = args.out_dir.resolve()
    elif s.smoke:
        s.out_dir = None  # a temp dir, made when the report is written
    s.keep = args.keep
    s.default_interval = not args.no_default_interval
    if args.p3_variants:
        wanted = tuple(v.strip() for v in args.p3_variants.split(",") if v.strip())
        unknown = [v for v in wanted if v not in P3_VARIANTS]
        if unknown:
            parser.error(f"--p3-variants: unknown {unknown}; choose from {','.join(P3_VARIANTS)}")
        s.p3_variants = wanted
    if args.long_task is not None:
        if args.long_task < 0:
            parser.error("--long-task must be 0 or more")
        s.long_task_s = args.long_task
    s.pool_slots = args.pool_slots
    s.fail_on_goals = args.fail_on_goals
    s.command = " ".join(shlex.quote(a) for a in ["python", "-m", "benchmarks.run", *(argv if argv is not None else sys.argv[1:])])
    return s


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def airflow_version() -> str:
    try:
        return importlib.metadata.version("apache-airflow")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    started = time.monotonic()
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": settings.command,
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "airflow_version": airflow_version(),
        "profile": str(settings.profile) if settings.profile else None,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "parameters": {k: getattr(settings, k) for k in ("sequential", "burst", "parked", "rounds",
                                                          "parse_processes", "hook_calls", "warmup", "smoke")},
        "only": list(settings.only),
    }
    say(f"{settings.command}: measuring {','.join(settings.only)}; load average {meta['loadavg_before']}")
    stack = Stack(settings)
    bench = Bench(settings, stack)
    # The Airflow home whose logs (the scheduler's `Workload finished` lines) the figures come from;
    # it is deleted at the end unless --keep.
    meta["airflow_home"] = str(stack.home / "airflow")
    meta["airflow_home_kept"] = settings.keep
    failed, interrupted = True, False
    try:
        stack.up()
        meta["settings"] = stack.env_settings
        bench.measure()
        failed = False
    except KeyboardInterrupt as exc:
        interrupted = True
        say(f"interrupted ({exc}); tearing down")
        return 130
    except (BenchmarkError, HarnessError) as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        # The teardown runs to its end: a second Ctrl-C or TERM does not cut it short.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            stack.down(failed, interrupted)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["warmup_latencies_s"] = bench.warmup_latencies
    meta["duration_s"] = time.monotonic() - started
    rows = table_rows(bench.results, settings)
    print()
    print(format_table(rows))
    print()
    paths = write_report(settings, bench.results, meta, bench.problems)
    say(f"written: {', '.join(str(p) for p in paths.values())}")
    if bench.problems:
        say(f"{len(bench.problems)} problem(s): measurements marked INVALID")
        for p in bench.problems[:10]:
            print(p[:3000])
        return 1
    if settings.fail_on_goals and any(verdict(p, bench.results.get(p)) == "FAIL" for p in settings.only):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
