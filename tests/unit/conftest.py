"""
The unit tests' fixtures: the services answered in process, for tests of the provider's own handling
of an answer (``service_double``); real services whose carrier picks shipments up quickly, for tests
whose point is the services' state (``fast_services``, ``fast_connections``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from order_services.errors import NOT_FOUND, error_body
from order_services.testing import start_order_services

from harness.services import SERVICES
from tests.conftest import use_services

#: Seconds after which the fast services' carrier picks a shipment up.
FAST_DISPATCH_DELAY = 0.5
ADDRESS = {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London",
           "postal_code": "SW1Y 4JH", "country": "GB", "region": "eu-west"}


class ServiceDouble:
    """
    The order services answered in process through ``httpx.MockTransport``: no server, no socket.

    Every request the provider's hooks send (their synchronous and asynchronous clients alike) goes to
    :attr:`answer`, which returns the ``httpx.Response`` or raises an ``httpx`` transport error (a
    timeout, a refused connection); :attr:`requests` are the requests seen, oldest first.
    """

    #: What the provider's connections point at (nothing listens there).
    URI = "http://:test-key@services.test:8700"
    API_KEY = "test-key"

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: Callable[[httpx.Request], httpx.Response] = lambda request: httpx.Response(
            404, json=error_body(NOT_FOUND, f"no route {request.url.path} in this test")
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


@pytest.fixture
def service_double(monkeypatch: pytest.MonkeyPatch) -> ServiceDouble:
    """The provider's four default connections pointed at a :class:`ServiceDouble`."""
    double = ServiceDouble()
    transport = httpx.MockTransport(double.handle)

    class Client(httpx.Client):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("transport", transport)
            super().__init__(*args, **kwargs)

    class AsyncClient(httpx.AsyncClient):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("transport", transport)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "Client", Client)
    monkeypatch.setattr(httpx, "AsyncClient", AsyncClient)
    for service in SERVICES:
        monkeypatch.setenv(f"AIRFLOW_CONN_ORDER_{service.upper()}_DEFAULT", ServiceDouble.URI)
    return double


@pytest.fixture(scope="module")
def fast_services(tmp_path_factory):
    """Reference services that dispatch a shipment 0.5 s after it is scheduled."""
    workdir = tmp_path_factory.mktemp("fast-dispatch")
    server = start_order_services(
        workdir / "order-services.db", api_key="test-key", dispatch_delay=FAST_DISPATCH_DELAY,
        log_path=workdir / "order-services.log",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_connections(fast_services, monkeypatch):
    """The provider's default connections pointed at :func:`fast_services`; faults cleared after."""
    try:
        yield use_services(fast_services, monkeypatch)
    finally:
        fast_services.clear_faults()


def schedule_shipment(order_id: str) -> dict:
    """Reserve a mug and book its shipment, through the default connections."""
    from airflow_order_provider.hooks.inventory import InventoryHook
    from airflow_order_provider.hooks.shipping import ShippingHook

    reservation = InventoryHook().reserve(
        order_id=order_id, items=[{"sku": "SKU-RED-MUG", "quantity": 1}], region="eu-west",
        idempotency_key=f"{order_id}:inventory.reserve",
    )
    return ShippingHook().schedule(
        order_id=order_id, reservation_id=reservation["reservation_id"], address=ADDRESS,
        service_level="standard", idempotency_key=f"{order_id}:shipping.schedule",
    )


def dispatched_shipment(order_id: str) -> dict:
    """A shipment of the fast services, once the carrier has picked it up."""
    shipment = schedule_shipment(order_id)
    time.sleep(FAST_DISPATCH_DELAY + 0.1)
    return shipment
