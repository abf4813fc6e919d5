"""
The chaos suite runs on the end-to-end fixtures the integration tests use (:mod:`tests.e2e`:
``airflow_env``, a real Airflow on PostgreSQL; ``client``, the REST client with ``order_processing``
unpaused; ``services`` from tests/conftest.py, the reference services, faults cleared after the test).

Its Airflow needs settings of its own (below), so the chaos suite runs in a pytest session of its
own (``make chaos``); a session that also collects other end-to-end tests deselects it and says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import e2e

HERE = Path(__file__).parent
_DESELECTED = pytest.StashKey[int]()

#: What the chaos session's Airflow sets on top of the e2e deployment's settings
#: (``E2E_DEPLOYMENT_SETTINGS``), applied only when the chaos test runs (its Airflow is its own).
#: The e2e workflow timeout (1 h x time_scale 0.01 = 36 s) is shorter than an order takes on a
#: loaded 2-core machine once faults add retries: nearly every order would end in a workflow
#: timeout and nothing else would be exercised. 300 s here; orders that ask for a shorter one in
#: their conf (``workflow_timeout_seconds``, see plan.py) keep the timeout path in the mix.
#: Step timeouts: 15 s (1500 s x 0.01) instead of the 5 s floor, for every step and compensation.
#: Measured here (load average 15-25 on 2 cores, shared): a try spends up to 5 s before its first
#: request, importing the hook's modules (requests, aiohttp) and reading XComs from the API server,
#: so with 5 s most tries of a compensation timed out before sending anything and the orders never
#: settled. The chaos still loses answers: phase "after" faults and killed workers.
STEP_TIMEOUT = 1500
_overrides = json.loads(e2e.E2E_DEPLOYMENT_SETTINGS.get("AIRFLOW__ORDER_PROVIDER__POLICY_OVERRIDES") or "{}")
for _service in ("payment", "inventory", "shipping", "notification"):
    for _row in (_service, f"{_service}.compensation"):
        if _row != "notification.compensation":
            _overrides[_row] = {**_overrides.get(_row, {}), "step_timeout": STEP_TIMEOUT}
#: Every undo keeps trying for 120 s (12000 s x 0.01), well past the outage's stretch (20 s, plan.py):
#: an order caught by the outage is compensated once the service is back, never left to a person.
for _service in ("payment", "inventory", "shipping"):
    _overrides[f"{_service}.compensation"]["horizon"] = 12000
CHAOS_DEPLOYMENT_SETTINGS = {
    "AIRFLOW__ORDER_PROVIDER__WORKFLOW_TIMEOUT": "30000",
    "AIRFLOW__ORDER_PROVIDER__POLICY_OVERRIDES": json.dumps(_overrides),
}


def _is_chaos(item: pytest.Item) -> bool:
    """A test of this suite that needs the Airflow stack (the verdict's unit tests do not)."""
    return HERE in Path(item.path).parents and item.get_closest_marker("integration") is not None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    chaos = [item for item in items if _is_chaos(item)]
    others = [item for item in items if not _is_chaos(item) and item.get_closest_marker("integration")]
    if chaos and others:
        config.hook.pytest_deselected(items=chaos)
        items[:] = [item for item in items if not _is_chaos(item)]
        config.stash[_DESELECTED] = len(chaos)
    elif chaos:
        # This session's Airflow serves the chaos suite alone: configure it for the chaos run.
        e2e.E2E_DEPLOYMENT_SETTINGS.update(CHAOS_DEPLOYMENT_SETTINGS)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if config.stash.get(_DESELECTED, 0):
        terminalreporter.write_line(
            f"[chaos] {config.stash[_DESELECTED]} chaos test(s) deselected: they need an Airflow of their own; "
            "run them alone with `make chaos` (or pytest tests/chaos)"
        )
