"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from order_services import __version__, admin, errors, inventory, notification, payment, shipping
from order_services.context import ServiceContext, Settings
from order_services.contract import contract_openapi
from order_services.errors import VALIDATION, ServiceError, error_response
from order_services.faults import FaultRegistry
from order_services.middleware import BodyGuardMiddleware, GateMiddleware
from order_services.storage import Store, normalize_db_url

log = logging.getLogger(__name__)

_LOCATION_ROOTS = ("body", "query", "path", "header", "cookie")
_HTTP_ERROR_TYPES = {404: errors.NOT_FOUND, 405: errors.METHOD_NOT_ALLOWED, 413: errors.PAYLOAD_TOO_LARGE}


def describe_validation_errors(exc: RequestValidationError) -> str:
    """``items.0.quantity: Input should be greater than 0; currency: ...``"""
    parts = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        if len(loc) > 1 and loc[0] in _LOCATION_ROOTS:
            loc = loc[1:]
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{'.'.join(loc) or 'body'}: {message}")
    return "; ".join(parts) or "invalid request"


async def _validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, VALIDATION, describe_validation_errors(exc))


async def _service_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status_code, exc.error_type, exc.message)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        route_methods = getattr(route, "methods", None)
        if match != Match.NONE and route_methods:
            methods.update(route_methods)
    return sorted(methods)


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {headers['Allow']}"
        return error_response(405, errors.METHOD_NOT_ALLOWED, message, headers=headers)
    if exc.status_code == 400:  # FastAPI could not decode the body (the body guard answers first)
        return error_response(422, errors.VALIDATION, f"body: {exc.detail}")
    error_type = _HTTP_ERROR_TYPES.get(exc.status_code, "HTTPError")
    return error_response(exc.status_code, error_type, str(exc.detail), headers=headers or None)


async def _unexpected_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %r", exc)
    return error_response(500, "InternalError", "internal server error")


def create_app(
    db_url: str,
    api_key: str | None = None,
    initial_stock: int = 1000,
    hold_seconds: float = 86400,
    dispatch_delay: float = 5.0,
) -> FastAPI:
    """Build the app. ``db_url`` is a SQLAlchemy URL or a SQLite file path; tables are created now."""
    store = Store(normalize_db_url(db_url))
    context = ServiceContext(
        store=store,
        faults=FaultRegistry(),
        settings=Settings(
            initial_stock=initial_stock,
            hold_seconds=float(hold_seconds),
            dispatch_delay=float(dispatch_delay),
        ),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        store.dispose()

    app = FastAPI(
        title="order-services",
        version=__version__,
        description="Reference payment, inventory, shipping and notification services (docs/reference-services.md).",
        lifespan=lifespan,
    )
    app.state.order_services = context
    # The last added runs first: the gate (auth, faults, key), then the body guard, then routing.
    app.add_middleware(BodyGuardMiddleware)
    app.add_middleware(GateMiddleware, api_key=api_key or None, faults=context.faults, router=app.router)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Exception, _unexpected_error_handler)
    for module in (payment, inventory, shipping, notification, admin):
        app.include_router(module.router)
    app.openapi = lambda: contract_openapi(app)  # type: ignore[method-assign]
    return app
