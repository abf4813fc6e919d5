"""Small helpers every part of the benchmark uses: its error, its progress line, times and medians."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Iterable


class BenchmarkError(RuntimeError):
    pass


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

