"""The OpenAPI schema is the contract (docs/reference-services.md): every operation documents its error
answers with the one error body, the bearer authentication (``/health`` exempt) and, on mutating calls,
the required ``Idempotency-Key`` header.

Routes declare their success body and their business errors with :func:`answers`; :func:`contract_openapi`
adds what the gate and the body guard answer on every operation of a kind (401, 503, 400/409 for the key,
413/422 for bodies and parameters) and replaces FastAPI's own 422 shape, which this API never answers.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from order_services import errors
from order_services.faults import SERVICES
from order_services.models import ErrorBody

SECURITY_SCHEME = "bearerAuth"
ERROR_SCHEMA_REF = "#/components/schemas/ErrorBody"

#: The status each error type of the contract answers with.
STATUS_OF: dict[str, int] = {
    errors.IDEMPOTENCY_KEY_MISSING: 400,
    errors.AUTHENTICATION: 401,
    errors.PAYMENT_DECLINED: 402,
    errors.FRAUD_DETECTED: 402,
    errors.INSUFFICIENT_FUNDS: 402,
    errors.CARD_EXPIRED: 402,
    errors.PAYMENT_NOT_FOUND: 404,
    errors.RESERVATION_NOT_FOUND: 404,
    errors.SHIPMENT_NOT_FOUND: 404,
    errors.IDEMPOTENCY_KEY_REUSED: 409,
    errors.OUT_OF_STOCK: 409,
    errors.INVALID_STATE: 409,
    errors.PAYLOAD_TOO_LARGE: 413,
    errors.VALIDATION: 422,
    errors.ITEM_DISCONTINUED: 422,
    errors.REGION_NOT_SERVICED: 422,
    errors.ADDRESS_UNDELIVERABLE: 422,
    errors.SERVICE_UNAVAILABLE: 503,
}

_TITLES = {
    400: "Idempotency-Key header missing",
    401: "Missing or wrong API key",
    402: "Payment refused",
    404: "Not found",
    409: "Conflict",
    413: "Request body over 64 KiB",
    422: "Invalid request",
    503: "Service unavailable (injected fault)",
}


def _error_response(status: int, error_types: list[str]) -> dict[str, Any]:
    names = ", ".join(f"`{name}`" for name in error_types)
    return {
        "description": f"{_TITLES[status]}: {names}",
        "x-error-types": list(error_types),
        "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}},
    }


def link(operation_id: str, *, body: dict[str, str] | None = None, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to ``operation_id``; each parameter (or body field) takes a field of this answer's
    body (``payment_id="payment_id"`` is ``$response.body#/payment_id``)."""
    definition: dict[str, Any] = {"operationId": operation_id}
    if parameters:
        definition["parameters"] = {name: f"$response.body#/{field}" for name, field in parameters.items()}
    if body:
        definition["requestBody"] = {name: f"$response.body#/{field}" for name, field in body.items()}
    return definition


def answers(
    status: int,
    model: type[BaseModel],
    *error_types: str,
    links: dict[str, dict[str, Any]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: its success body (with the links to what can be done with it next)
    and the business errors it can answer."""
    responses: dict[int | str, dict[str, Any]] = {status: {"model": model, "description": "Success"}}
    if links:
        responses[status]["links"] = links
    by_status: dict[int, list[str]] = defaultdict(list)
    for error_type in error_types:
        by_status[STATUS_OF[error_type]].append(error_type)
    for error_status, types in by_status.items():
        documented = _error_response(error_status, types)
        documented.pop("content")
        responses[error_status] = {"model": ErrorBody, **documented}
    return responses


def _is_error_body(response: dict[str, Any] | None) -> bool:
    return (response or {}).get("content", {}).get("application/json", {}).get("schema") == {
        "$ref": ERROR_SCHEMA_REF
    }


def _add_error(responses: dict[str, Any], error_type: str) -> None:
    status = str(STATUS_OF[error_type])
    existing = responses.get(status)
    types = list(existing.get("x-error-types", [])) if _is_error_body(existing) else []
    if error_type not in types:
        types.append(error_type)
    responses[status] = _error_response(int(status), types)


def _is_service(path: str) -> bool:
    return path.strip("/").split("/", 1)[0] in SERVICES


def contract_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # FastAPI's default 422 body ({"detail": [{"loc", "msg", "type"}]}) is never answered here.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorBody"] = error_schema
    components["securitySchemes"] = {SECURITY_SCHEME: {"type": "http", "scheme": "bearer"}}
    schema["security"] = [{SECURITY_SCHEME: []}]

    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if "422" in responses and not _is_error_body(responses["422"]):
                del responses["422"]  # FastAPI's default shape
            if path == "/health":
                operation["security"] = []
                continue
            _add_error(responses, errors.AUTHENTICATION)
            if _is_service(path):
                _add_error(responses, errors.SERVICE_UNAVAILABLE)
            if "requestBody" in operation:
                _add_error(responses, errors.PAYLOAD_TOO_LARGE)
                _add_error(responses, errors.VALIDATION)
            if operation.get("parameters"):
                _add_error(responses, errors.VALIDATION)
            if method == "post" and _is_service(path):
                _add_error(responses, errors.IDEMPOTENCY_KEY_MISSING)
                _add_error(responses, errors.IDEMPOTENCY_KEY_REUSED)
            operation["responses"] = dict(sorted(responses.items()))
    _integral_bounds(schema)
    app.openapi_schema = schema
    return schema


def _integral_bounds(node: Any) -> None:
    """FastAPI's OpenAPI model holds bounds as floats (``maximum: 1000000000000.0``); write integral ones as
    integers, as the validation has them."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _BOUNDS and isinstance(value, float) and value.is_integer():
                node[key] = int(value)
            else:
                _integral_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _integral_bounds(item)


_BOUNDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
