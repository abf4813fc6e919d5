"""Test helpers for the reference order services (re-exported from :mod:`order_services.testing`).

``OrderServicesServer`` is what the ``order_services`` fixture (tests/conftest.py) yields.
"""

from __future__ import annotations

from order_services.testing import (
    OrderServicesHTTPError,
    OrderServicesServer,
    free_port,
    new_key,
    start_order_services,
)

__all__ = ["OrderServicesHTTPError", "OrderServicesServer", "free_port", "new_key", "start_order_services"]
