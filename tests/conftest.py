"""Shared fixtures: the reference order services as a real subprocess.

``order_services`` (session scope) starts ``order-services serve`` once per test session and yields an
:class:`order_services.testing.OrderServicesServer`; ``clean_faults`` clears injected faults after a test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from order_services.testing import OrderServicesServer, start_order_services

import tests.airflow_env  # noqa: F401  (isolates Airflow's config; must run before Airflow is imported)

__all__ = ["OrderServicesServer", "clean_faults", "order_services"]

API_KEY = "test-key"
#: Seconds from a shipment's scheduling to the carrier's pickup. Long enough for a cancel sent while
#: an order awaits the pickup to reach the shipment first (the trigger sees the signal within a
#: poll, about 1 s; the planner and cancel_shipment take a few more on a real Airflow).
SESSION_DISPATCH_DELAY = 10.0


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
    (``order_services.testing.new_key()``), and clear faults you set (``clean_faults``).
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
def clean_faults(order_services: OrderServicesServer) -> Iterator[OrderServicesServer]:
    """The session's ``order_services`` server; all injected faults are cleared after the test."""
    try:
        yield order_services
    finally:
        order_services.clear_faults()


@pytest.fixture
def service_connections(order_services: OrderServicesServer, monkeypatch: pytest.MonkeyPatch):
    """Point the provider's four default connections at the reference services, by URI as a user would."""
    for service in ("payment", "inventory", "shipping", "notification"):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_ORDER_{service.upper()}_DEFAULT",
            f"http://:{order_services.api_key}@{order_services.host}:{order_services.port}",
        )
    try:
        yield order_services
    finally:
        order_services.clear_faults()


@pytest.fixture
def order_id() -> str:
    """A fresh order id, so that tests sharing the services never mix their ledgers."""
    from harness.orders import new_order_id

    return new_order_id()
