"""The fixtures every test level shares, and the runs some tests need of their own.

* ``order_services`` (session scope) starts ``order-services serve`` once per test session and yields
  an :class:`order_services.testing.OrderServicesServer`; ``services`` is that server with the faults a
  test injects cleared after it; ``service_connections`` also points the provider's connections at it.
* The end-to-end fixtures (``airflow_env``, ``airflow_client``, ``client``: a real Airflow on
  PostgreSQL) are the plugin :mod:`tests.e2e`, shared by the integration tests and the chaos suite.
* Tests marked ``bench`` or ``compose`` bring up a stack of their own (the benchmark harness, the
  compose file on Docker): they are left out of every run whose ``-m`` expression does not name
  their marker (``make test``'s ``-m "not distributed and not chaos"`` among them); ``make bench-smoke``
  / ``pytest tests/benchmarks -m bench`` and ``make test-compose`` run them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from order_services.testing import OrderServicesServer, start_order_services

import tests.airflow_env  # noqa: F401  (isolates Airflow's config; must run before Airflow is imported)
from harness.services import connection_env

pytest_plugins = ["tests.e2e"]

__all__ = ["OrderServicesServer", "order_services", "services"]

API_KEY = "test-key"
#: Seconds from a shipment's scheduling to the carrier's pickup. Long enough for a cancel sent while
#: an order awaits the pickup to reach the shipment first (the trigger sees the signal within a
#: poll, about 1 s; the planner and cancel_shipment take a few more on a real Airflow).
SESSION_DISPATCH_DELAY = 10.0
#: Markers of tests that run only when the ``-m`` expression names them.
OWN_RUN_MARKERS = ("bench", "compose")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    markexpr = config.getoption("markexpr", "") or ""
    for marker in OWN_RUN_MARKERS:
        if marker in markexpr:
            continue
        own = [item for item in items if item.get_closest_marker(marker) is not None]
        if own:
            config.hook.pytest_deselected(items=own)
            items[:] = [item for item in items if item.get_closest_marker(marker) is None]


@pytest.fixture(scope="session")
def order_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderServicesServer]:
    """A real ``order-services serve`` process for the whole test session.

    Started as ``python -m order_services.cli serve --host 127.0.0.1 --port <free port> --db <tmp>/order-services.db``
    with API key ``test-key`` (passed as ``ORDER_SERVICES_API_KEY``) and the default settings
    (initial stock 1000, hold 86400 s, dispatch delay SESSION_DISPATCH_DELAY), in its own process group; ``/health`` is
    up before the fixture yields. Teardown signals that process group by its pgid (never by name).

    Yields an ``OrderServicesServer`` (``from order_services.testing import OrderServicesServer``):

    * ``base_url`` (``"http://127.0.0.1:<port>"``), ``api_key`` (``"test-key"``), ``host``, ``port``,
      ``db_path`` (the SQLite file), ``log_path`` (the server's stdout+stderr);
    * ``get(path, **kw)``, ``post(path, json=None, idempotency_key=None, **kw)``, ``delete(path, **kw)``:
      ``requests`` calls with ``Authorization: Bearer test-key`` that return the decoded JSON body and
      raise ``order_services.testing.OrderServicesHTTPError`` (``.response``, ``.error_type``) on 4xx/5xx;
      ``get_response``/``post_response``/``delete_response``/``request(method, path, ...)`` return the
      raw ``requests.Response`` whatever the status. ``post`` sends ``Idempotency-Key`` only when
      ``idempotency_key`` is given (``order_services.testing.new_key()`` makes a fresh one);
    * ``audit(order_id) -> list[dict]``: the ledger entries of the order, oldest first;
    * ``set_faults(service, error_rate=0.0, latency_ms=0, seed=None) -> dict``, ``faults() -> list``,
      ``clear_faults()``.

    The server is shared by every test of the session: use fresh order ids, SKUs and Idempotency-Keys
    (``order_services.testing.new_key()``), and clear faults you set (``services``).
    """
    workdir = tmp_path_factory.mktemp("order-services")
    server = start_order_services(
        workdir / "order-services.db",
        api_key=API_KEY,
        dispatch_delay=SESSION_DISPATCH_DELAY,
        log_path=workdir / "order-services.log",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def services(order_services: OrderServicesServer) -> Iterator[OrderServicesServer]:
    """The session's ``order_services`` server; the faults a test injects are cleared after it."""
    try:
        yield order_services
    finally:
        order_services.clear_faults()


def use_services(server: OrderServicesServer, monkeypatch: pytest.MonkeyPatch) -> OrderServicesServer:
    """Point the provider's four default connections at ``server``, by URI as a user would."""
    for name, uri in connection_env(server).items():
        monkeypatch.setenv(name, uri)
    return server


@pytest.fixture
def service_connections(services: OrderServicesServer, monkeypatch: pytest.MonkeyPatch):
    """The provider's default connections pointed at the session's services; faults cleared after."""
    return use_services(services, monkeypatch)


@pytest.fixture
def order_id() -> str:
    """A fresh order id, so that tests sharing the services never mix their ledgers."""
    from harness.orders import new_order_id

    return new_order_id()
