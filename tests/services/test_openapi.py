"""The OpenAPI schema is the contract: errors, authentication and Idempotency-Key are documented."""

from __future__ import annotations

import json

import pytest
import requests

SERVICES = ("payment", "inventory", "shipping", "notification")
ERROR_STATUSES = {"400", "401", "402", "404", "409", "413", "422", "503"}

# Business errors each operation can answer, beyond the common ones (see test_common_errors).
BUSINESS_ERRORS = {
    ("post", "/payment/charges"): {
        "402": {"PaymentDeclinedError", "FraudDetectedError", "InsufficientFundsError", "CardExpiredError"},
    },
    ("post", "/payment/charges/{payment_id}/refund"): {
        "404": {"PaymentNotFoundError"},
        "409": {"InvalidStateError"},
        "422": {"ValidationError"},
    },
    ("get", "/payment/charges/{payment_id}"): {"404": {"PaymentNotFoundError"}},
    ("post", "/inventory/reservations"): {
        "409": {"OutOfStockError"},
        "422": {"ItemDiscontinuedError", "RegionNotServicedError"},
    },
    ("post", "/inventory/reservations/{reservation_id}/release"): {
        "404": {"ReservationNotFoundError"},
        "409": {"InvalidStateError"},
    },
    ("get", "/inventory/reservations/{reservation_id}"): {"404": {"ReservationNotFoundError"}},
    ("post", "/shipping/shipments"): {
        "404": {"ReservationNotFoundError"},
        "409": {"InvalidStateError"},
        "422": {"AddressUndeliverableError"},
    },
    ("post", "/shipping/shipments/{shipment_id}/cancel"): {
        "404": {"ShipmentNotFoundError"},
        "409": {"InvalidStateError"},
    },
    ("get", "/shipping/shipments/{shipment_id}"): {"404": {"ShipmentNotFoundError"}},
}


@pytest.fixture(scope="module")
def schema(order_services):
    response = order_services.get_response("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options"}:
                yield method, path, operation


def resolve(schema, node):
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


def is_service(path):
    return path.strip("/").split("/")[0] in SERVICES


def test_the_schema_needs_the_key(order_services):
    assert requests.get(order_services.url("/openapi.json"), timeout=5).status_code == 401


def test_fastapis_default_422_shape_does_not_appear(schema):
    text = json.dumps(schema)
    assert "HTTPValidationError" not in text
    for name, component in schema["components"]["schemas"].items():
        assert set(component.get("properties", {})) != {"loc", "msg", "type"}, name


def test_error_body_schema(schema):
    body = resolve(schema, {"$ref": "#/components/schemas/ErrorBody"})
    assert body["required"] == ["error"]
    detail = resolve(schema, body["properties"]["error"])
    assert set(detail["required"]) == {"type", "message"}
    assert detail["properties"]["type"]["type"] == "string"
    assert detail["properties"]["message"]["type"] == "string"


def test_every_error_answer_has_the_error_body(schema):
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert status in ERROR_STATUSES, (method, path, status)
                media = response["content"]["application/json"]
                assert media["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
                assert response["description"], (method, path, status)


def test_bearer_auth_everywhere_but_health(schema):
    schemes = schema["components"]["securitySchemes"]
    [(name, scheme)] = schemes.items()
    assert scheme == {"type": "http", "scheme": "bearer"}
    assert schema["security"] == [{name: []}]
    for method, path, operation in operations(schema):
        if path == "/health":
            assert operation["security"] == [], method
            assert not any(s.startswith("4") for s in operation["responses"])
        else:
            assert operation.get("security", schema["security"]) == [{name: []}], (method, path)
            assert "AuthenticationError" in operation["responses"]["401"]["description"], (method, path)


def test_common_errors(schema):
    for method, path, operation in operations(schema):
        responses = operation["responses"]
        if is_service(path):
            assert "ServiceUnavailableError" in responses["503"]["description"], (method, path)
        else:
            assert "503" not in responses, (method, path)
        if "requestBody" in operation:
            assert "PayloadTooLargeError" in responses["413"]["description"], (method, path)
            assert "ValidationError" in responses["422"]["description"], (method, path)
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in responses, (method, path)
        if method == "post" and is_service(path):
            assert "IdempotencyKeyMissingError" in responses["400"]["description"], (method, path)
            assert "IdempotencyKeyReusedError" in responses["409"]["description"], (method, path)
        else:
            assert "400" not in responses, (method, path)


def test_business_errors_are_documented(schema):
    for (method, path), by_status in BUSINESS_ERRORS.items():
        responses = schema["paths"][path][method]["responses"]
        for status, types in by_status.items():
            for error_type in types:
                assert error_type in responses[status]["description"], (method, path, status, error_type)


def test_mutating_calls_require_an_idempotency_key_header(schema):
    for method, path, operation in operations(schema):
        headers = {p["name"].lower(): p for p in operation.get("parameters", []) if p["in"] == "header"}
        if method == "post" and is_service(path):
            assert headers["idempotency-key"]["required"] is True, path
        else:
            assert "idempotency-key" not in headers, (method, path)


def test_success_answers_have_schemas(schema):
    for method, path, operation in operations(schema):
        [success] = [s for s in operation["responses"] if s.startswith("2")]
        if method == "head":
            continue
        media = operation["responses"][success]["content"]["application/json"]
        assert resolve(schema, media["schema"]).get("properties"), (method, path)
    charge = resolve(
        schema,
        schema["paths"]["/payment/charges"]["post"]["responses"]["201"]["content"]["application/json"][
            "schema"
        ],
    )
    assert {"payment_id", "refunded_amount", "status"} <= set(charge["properties"])


def test_operation_ids_are_unique(schema):
    ids = [operation["operationId"] for _m, _p, operation in operations(schema)]
    assert len(ids) == len(set(ids))
