"""What a benchmark run measures and with which settings: the DAGs, the goals, the P3 variants, the options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.common import REPO_ROOT
from harness.orders import HIGH_VALUE

BENCH_DIR = Path(__file__).resolve().parent
ORDER_DAG_FILE = REPO_ROOT / "dags" / "order_processing.py"
NOOP_DAG_FILE = BENCH_DIR / "dags" / "order_shape_noop.py"
LONG_TASK_DAG_FILE = BENCH_DIR / "dags" / "slot_long_task.py"
LONG_TASK = "bench_long_task"
DEPLOY_ENV_FILE = REPO_ROOT / "deploy" / "airflow-order.env"
DOCS_DIR = REPO_ROOT / "docs"
ORDER, NOOP = "order_processing", "order_shape_noop"
DAG_IDS = (ORDER, NOOP)
API_KEY = "bench-key"
#: The approval threshold's default is 100000 (minor units); parked orders are well above it.
PARKED_ITEMS = HIGH_VALUE["items"]
PARKED_STATES = ("awaiting_input", "deferred")
ALL_PS = ("P1", "P2", "P3", "P4", "P5")

GOALS = {
    "P1": ("<=", 1.05, "happy-order latency / no-op latency (median of rounds)"),
    "P2": (">=", 0.9, "burst drain rate, order / no-op (median of rounds)"),
    "P3": ("<=", 1.2, "order latency with M parked / without (P1); parked hold no running task"),
    "P4": ("<=", 1.5, "parse time of dags/order_processing.py / no-op DAG file"),
    "P5": ("<=", 5.0, "hook call - raw request, ms (medians)"),
}

#: What the benchmark sets on top of the harness's settings, before deploy/airflow-order.env and
#: the profile: a deployment's real business times (the harness's 0.01 is for tests: a 36 s
#: workflow timeout and 5 s step timeouts that a burst on a loaded machine would run into).
BENCH_BASE_SETTINGS = {"AIRFLOW__ORDER_PROVIDER__TIME_SCALE": "1"}
#: The supervisor's heartbeat interval, which also bounds how long a finished task can hold its
#: slot (docs/slot-release.md); P2 also drains with Airflow's default beside the shipped value.
HEARTBEAT_INTERVAL = "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"
AIRFLOW_DEFAULT_HEARTBEAT_INTERVAL = "5"

#: P3's variants, measured one after the other with the same orders parked: each restarts the
#: components it changes (the API server reads [order_provider] nudge_runs at start, the scheduler
#: its loop settings) on top of the run's settings; "shipped" is the run's settings as they are.
NUDGE_RUNS = "AIRFLOW__ORDER_PROVIDER__NUDGE_RUNS"
#: A variant's pseudo-component: one more scheduler process, started for the variant and stopped after.
SECOND_SCHEDULER = "second-scheduler"
P3_VARIANTS: dict[str, dict[str, dict[str, str]]] = {
    "shipped": {},
    "no-nudge": {"api-server": {NUDGE_RUNS: "False"}},
    "batch4-idle0.1": {"scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "4",
                                     "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"}},
    "no-nudge-batch4-idle0.1": {"api-server": {NUDGE_RUNS: "False"},
                                "scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "4",
                                              "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"}},
    "batch512": {"scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "512"}},
    "idle0.1": {"scheduler": {"AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"}},
    # Airflow's default batch, the shipped profile's before 2026-12-05.
    "batch20": {"scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "20"}},
    "batch4": {"scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "4"}},
    "batch2": {"scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "2"}},
    "batch1": {"scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "1"}},
    "batch2-idle0.1": {"scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "2",
                                     "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"}},
    "batch1-idle0.1": {"scheduler": {"AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "1",
                                     "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"}},
    # A second scheduler beside the first, with the run's settings (Airflow's HA: both take runs
    # FOR UPDATE SKIP LOCKED).
    "two-schedulers": {SECOND_SCHEDULER: {}},
}



@dataclass
class Settings:
    sequential: int = 6
    burst: int = 100
    parked: int = 500
    parked_sequential: int = 3
    rounds: int = 3
    parse_processes: int = 7
    hook_calls: int = 200
    only: tuple[str, ...] = ALL_PS
    profile: Path | None = None
    pool_slots: int | None = None
    smoke: bool = False
    out_dir: Path | None = DOCS_DIR
    keep: bool = False
    warmup: int = 1
    default_interval: bool = True
    p3_variants: tuple[str, ...] = ("shipped", "batch20")
    long_task_s: int = 60
    fail_on_goals: bool = False
    command: str = ""

    @property
    def suffix(self) -> str:
        pools = "" if self.pool_slots is None else "-tablepools" if self.pool_slots == 0 else f"-pools{self.pool_slots}"
        return (f"-{self.profile.stem}" if self.profile else "") + pools

    @property
    def profile_name(self) -> str:
        return self.profile.stem if self.profile else "default (deploy/airflow-order.env)"


def verdict(p: str, result: dict | None) -> str:
    if result is None:
        return "not run"
    if result.get("invalid_runs"):
        return "INVALID"
    op, goal, _ = GOALS[p]
    value = result.get("ratio")
    if value is None:
        return "n/a"
    ok = value <= goal if op == "<=" else value >= goal
    if p == "P3" and result.get("parked_running_tis"):
        ok = False
    return "pass" if ok else "FAIL"
