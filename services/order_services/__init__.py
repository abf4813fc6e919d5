"""Reference order services: payment, inventory, shipping and notification behind one HTTP process.

The HTTP contract lives in ``docs/reference-services.md``. Start the process with
``order-services serve`` (see :mod:`order_services.cli`) or build the ASGI app in-process with
:func:`order_services.app.create_app`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy so that importing order_services.testing does not pull in FastAPI and SQLAlchemy.
    if name == "create_app":
        from order_services.app import create_app

        return create_app
    raise AttributeError(f"module 'order_services' has no attribute {name!r}")
