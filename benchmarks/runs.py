"""One benchmark run (:class:`Run`): its conf (a happy or a parked order, or a no-op), its times, its Execution API calls."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import parse_time
from benchmarks.settings import PARKED_ITEMS
from harness.common import REPO_ROOT


def _load_rush():
    """scripts/rush.py (not a package): its valid order and the ledger a happy order leaves."""
    spec = importlib.util.spec_from_file_location("_order_rush", REPO_ROOT / "scripts" / "rush.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module



RUSH = _load_rush()


def happy_order(order_id: str) -> dict[str, Any]:
    order = RUSH.an_order(1, "x")  # a valid order below the approval threshold (scripts/rush.py)
    order["order_id"] = order_id
    return order


def parked_order(order_id: str) -> dict[str, Any]:
    order = happy_order(order_id)
    order["items"] = [dict(item) for item in PARKED_ITEMS]
    order["total_amount"] = sum(i["quantity"] * i["unit_price"] for i in PARKED_ITEMS)
    return order


#: An Execution API request in the API server's access log.
EXECUTION_CALL = re.compile(r"method=(?P<method>[A-Z]+) path=(?P<path>/execution/\S*)")
_IDS = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _call_kind(path: str) -> str:
    """``/execution/xcoms/<dag>/<run>/<task>/<key>`` -> ``/execution/xcoms/<task>/<key>``; ids left out."""
    parts = _IDS.sub("/{id}", path).split("/")
    if len(parts) >= 7 and parts[2] == "xcoms":
        return "/".join(parts[:3] + parts[5:])
    if len(parts) >= 4 and parts[2] == "variables":
        return "/execution/variables/{key}"
    return "/".join(parts)


@dataclass
class Run:
    dag_id: str
    run_id: str
    order_id: str | None = None
    state: str | None = None
    queued_at: float | None = None
    start_date: float | None = None
    end_date: float | None = None
    problem: str | None = None
    api_calls: Counter = field(default_factory=Counter)

    @property
    def latency(self) -> float | None:
        if self.end_date is None or self.queued_at is None:
            return None
        return self.end_date - self.queued_at

    def update(self, api_run: dict) -> None:
        self.state = api_run.get("state")
        self.queued_at = parse_time(api_run.get("queued_at"))
        self.start_date = parse_time(api_run.get("start_date"))
        self.end_date = parse_time(api_run.get("end_date"))
