"""
The order API: start an order, follow it, cancel it, change where it ships; and the Orders page.

Mounted by the provider's plugin on Airflow's API server under ``/orders`` (see
:mod:`airflow_order_provider.plugins`). Everything is read from and written to Airflow's metadata
database through Airflow's own ORM models and session, inside the API server: an order is the
``order_processing`` DAG run whose run id is the order id, its status is derived from the run's
and its task instances' states (:mod:`airflow_order_provider.api.status`), its results are the
steps' XComs, and its signals (cancel, new address) are Airflow Variables
(:mod:`airflow_order_provider.signals`). There is no second store.

Authentication and authorization are Airflow's: every data endpoint depends on Airflow's
``requires_access_dag`` for the ``order_processing`` DAG's runs, which authenticates the caller
with Airflow's ``get_user`` (a bearer JWT from ``POST /auth/token``, or the UI's ``_token``
cookie) and asks the configured auth manager. GET endpoints need read access to the DAG's runs
(an order's details, which show its tries and results, also to its task instances and XComs),
``POST /orders`` the right to trigger it (``POST``), cancel and address changes the right to edit
its runs (``PUT``). The API server does not protect plugin apps by itself: only the Orders page's
HTML, JavaScript and CSS (which hold no data) are served without authentication.

Endpoints (public paths):

* ``POST /orders``: start an order (the DAG's conf), run id = order id; 201, 409 if started, 422.
* ``GET /orders``: orders newest first, ``status``, ``since``, ``limit`` (<= 500), ``offset``.
* ``GET /orders/health``: ``ok``, or ``degraded`` naming each missing order pool and connection.
* ``GET /orders/{order_id}``: status, current step, what it waits for that does not exist (a pool), results, history of every try, signals.
* ``POST /orders/{order_id}/cancel``: ``{"reason"}``; 202 (a repeat: the first), 409 when too late
  (the carrier has the parcel, or the order is finished or being undone). During an approval the
  cancel ends the wait at once.
* ``POST /orders/{order_id}/shipping-address``: a new address until the shipping step starts its
  first try (decided under a lock on that task's row, so the step sees the change or the API
  refuses it).

* ``GET /orders/ui``: the Orders page (``orders/ui`` is therefore not a usable order id here).

Modules: one router per resource (:mod:`~airflow_order_provider.api.orders`,
:mod:`~airflow_order_provider.api.order_signals`, :mod:`~airflow_order_provider.api.health`,
:mod:`~airflow_order_provider.api.page`), :mod:`~airflow_order_provider.api.auth` (who may do
what), :mod:`~airflow_order_provider.api.queries` (database reads and writes),
:mod:`~airflow_order_provider.api.responses` (answers), :mod:`~airflow_order_provider.api.status`
(the status rule), :mod:`~airflow_order_provider.api.airflow_rest` (Airflow's own REST API, called
as the caller: a cancel ends a pending approval through it), this one (the app).
"""

from __future__ import annotations

from functools import cache

from airflow.api_fastapi.common.dagbag import create_dag_bag
from fastapi import FastAPI

from airflow_order_provider.api import health, order_signals, orders, page


def create_app() -> FastAPI:
    app = FastAPI(
        title="Order API",
        description=__doc__,
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    # The DAG bag the public API's trigger endpoint reads the DAG from (serialized, from the DB).
    app.state.dag_bag = create_dag_bag()
    # The page and the health check before the orders: their paths are not order ids.
    for router in (page.router, health.router, orders.router, order_signals.router):
        app.include_router(router)
    return app


@cache
def get_app() -> FastAPI:
    """The order API's app, built once per process (the API server's)."""
    return create_app()
