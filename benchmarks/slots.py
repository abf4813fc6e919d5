"""
How long an executor slot stays busy after its task's end, read from the logs of a real Airflow.

A task's supervisor (a LocalExecutor worker, a Celery worker process) logs ``Workload finished ...
duration=S workload_id=TI_ID`` when it lets the slot go; the task instance's own span is its
``start_date`` to ``end_date`` (set by the task's ``/run`` and final state calls). The difference is
what the slot costs beyond the task: starting the task process, and, after the task reported its
state, the supervisor's wait for the process to exit. Airflow 3.3's supervisor can sleep up to
``[workers] min_heartbeat_interval`` there (docs/slot-release.md), which this measures.

The API server's access log gives each task's heartbeat calls (``PUT /execution/task-instances/
{id}/heartbeat``): their number per second of task span is the price of a shorter interval.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

_WORKLOAD_FINISHED = re.compile(r"Workload finished\b.*?\bduration=(?P<duration>[0-9.]+)")
_WORKLOAD_ID = re.compile(r"\bworkload_id=(?P<id>[0-9a-f-]{36})")
_HEARTBEAT = re.compile(r"method=PUT path=/execution/task-instances/(?P<id>[0-9a-f-]{36})/heartbeat\b")

#: A slot held this long past its task's start and end counts as held (the issue's threshold).
HELD_S = 2.0


def log_offset(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _lines(path: Path, offset: int) -> Iterable[str]:
    with path.open("rb") as log:
        log.seek(offset)
        for raw in log:
            yield raw.decode("utf-8", "replace")


def workload_durations(scheduler_log: Path, offset: int = 0) -> dict[str, list[float]]:
    """``{task instance id: [supervisor's workload duration, s, ...]}`` logged since ``offset``."""
    found: dict[str, list[float]] = defaultdict(list)
    for line in _lines(scheduler_log, offset):
        finished = _WORKLOAD_FINISHED.search(line)
        ident = finished and _WORKLOAD_ID.search(line)
        if finished and ident:
            found[ident["id"]].append(float(finished["duration"]))
    return dict(found)


def heartbeat_calls(api_log: Path, offset: int = 0) -> Counter:
    """``{task instance id: heartbeat calls}`` in the API server's access log since ``offset``."""
    calls: Counter = Counter()
    for line in _lines(api_log, offset):
        beat = _HEARTBEAT.search(line)
        if beat:
            calls[beat["id"]] += 1
    return calls


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


def _span_s(ti: Mapping[str, Any]) -> float | None:
    if not ti.get("start_date") or not ti.get("end_date"):
        return None
    start = datetime.fromisoformat(ti["start_date"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(ti["end_date"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def summarize(tis: Iterable[Mapping[str, Any]], workloads: Mapping[str, list[float]],
              heartbeats: Mapping[str, int]) -> dict[str, Any]:
    """
    Per task instance that ran once on a worker (one workload; a deferred task has several and is
    left out): the supervisor's workload duration, the task's own span, and their difference (the
    slot's hold beyond the task), each as p50 and p95; the share of workloads over
    :data:`HELD_S`; heartbeat calls per second of task span.
    """
    workload, span, hold = [], [], []
    beats, beat_seconds = 0, 0.0
    for ti in tis:
        durations = workloads.get(ti.get("id") or "")
        own = _span_s(ti)
        if not durations or len(durations) != 1 or own is None:
            continue
        workload.append(durations[0])
        span.append(own)
        hold.append(durations[0] - own)
        beats += heartbeats.get(ti["id"], 0)
        beat_seconds += own

    def p(values: list[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value, 3)

    return {
        "tasks": len(workload),
        "workload_p50_s": p(workload, 50), "workload_p95_s": p(workload, 95),
        "span_p50_s": p(span, 50), "span_p95_s": p(span, 95),
        "hold_p50_s": p(hold, 50), "hold_p95_s": p(hold, 95),
        "share_workloads_over_2s": round(sum(1 for w in workload if w > HELD_S) / len(workload), 3) if workload else None,
        "heartbeat_calls": beats,
        "heartbeats_per_task_s": round(beats / beat_seconds, 3) if beat_seconds else None,
    }
