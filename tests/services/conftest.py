"""Extra servers for the reference-services tests (the session server is ``order_services``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from order_services.testing import OrderServicesServer, start_order_services

LIMITED_STOCK = 5
FAST_DISPATCH = 0.5
SHORT_HOLD = 1.0


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderServicesServer]:
    """A server where new SKUs start with 5 units and shipments dispatch after 0.5 s."""
    workdir = tmp_path_factory.mktemp("order-services-limited")
    server = start_order_services(
        workdir / "limited.db",
        initial_stock=LIMITED_STOCK,
        dispatch_delay=FAST_DISPATCH,
        log_path=workdir / "limited.log",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def short_hold_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderServicesServer]:
    """A server whose reservation holds expire after 1 s."""
    workdir = tmp_path_factory.mktemp("order-services-short-hold")
    server = start_order_services(
        workdir / "short-hold.db", hold_seconds=SHORT_HOLD, log_path=workdir / "short-hold.log"
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., OrderServicesServer]]:
    """Start extra servers inside a test (``factory(db=..., **start_order_services kwargs)``);
    all of them are stopped at the end of the test."""
    started: list[OrderServicesServer] = []

    def factory(db: str | Path | None = None, **kwargs: Any) -> OrderServicesServer:
        kwargs.setdefault("log_path", tmp_path / f"server-{len(started)}.log")
        server = start_order_services(db if db is not None else tmp_path / "factory.db", **kwargs)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()
