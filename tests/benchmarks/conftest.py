"""
The benchmark harness's check (``make bench-smoke`` does the same without pytest).

Its test brings up an Airflow of its own, so it is left out of every pytest run whose ``-m``
expression does not name ``bench`` (``make test``'s ``-m "not distributed and not chaos"`` among
them), and said so; run it with ``pytest tests/benchmarks -m bench``.
"""

from __future__ import annotations

import pytest


def _is_bench(item: pytest.Item) -> bool:
    return item.get_closest_marker("bench") is not None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if "bench" in (config.getoption("markexpr", "") or ""):
        return
    bench = [item for item in items if _is_bench(item)]
    if bench:
        config.hook.pytest_deselected(items=bench)
        items[:] = [item for item in items if not _is_bench(item)]
