"""
The compose end-to-end test brings up docker-compose.yaml on Docker, so it is left out of every
pytest run whose ``-m`` expression does not name ``compose`` (``make test`` among them), and said
so; run it with ``make test-compose`` (``pytest tests/compose -m compose``).
"""

from __future__ import annotations

import pytest


def _is_compose(item: pytest.Item) -> bool:
    return item.get_closest_marker("compose") is not None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if "compose" in (config.getoption("markexpr", "") or ""):
        return
    compose = [item for item in items if _is_compose(item)]
    if compose:
        config.hook.pytest_deselected(items=compose)
        items[:] = [item for item in items if not _is_compose(item)]


def pytest_configure(config):
    # The compose test reuses the distributed test's settings and ledger (its module is imported,
    # with its `distributed` marker, which tests/integration/conftest.py registers for its own runs).
    config.addinivalue_line("markers", "distributed: the distributed end-to-end test (tests/integration)")
