"""Error model: every error answer is ``{"error": {"type": ..., "message": ...}}``."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

# Error type names of the contract (docs/reference-services.md).
IDEMPOTENCY_KEY_MISSING = "IdempotencyKeyMissingError"
AUTHENTICATION = "AuthenticationError"
PAYMENT_DECLINED = "PaymentDeclinedError"
FRAUD_DETECTED = "FraudDetectedError"
INSUFFICIENT_FUNDS = "InsufficientFundsError"
CARD_EXPIRED = "CardExpiredError"
PAYMENT_NOT_FOUND = "PaymentNotFoundError"
RESERVATION_NOT_FOUND = "ReservationNotFoundError"
SHIPMENT_NOT_FOUND = "ShipmentNotFoundError"
IDEMPOTENCY_KEY_REUSED = "IdempotencyKeyReusedError"
OUT_OF_STOCK = "OutOfStockError"
INVALID_STATE = "InvalidStateError"
VALIDATION = "ValidationError"
ITEM_DISCONTINUED = "ItemDiscontinuedError"
REGION_NOT_SERVICED = "RegionNotServicedError"
ADDRESS_UNDELIVERABLE = "AddressUndeliverableError"
SERVICE_UNAVAILABLE = "ServiceUnavailableError"
PAYLOAD_TOO_LARGE = "PayloadTooLargeError"
METHOD_NOT_ALLOWED = "MethodNotAllowedError"
NOT_FOUND = "NotFoundError"

#: Business errors that stay true whatever happens later: stored under the Idempotency-Key and replayed.
#: A too-large refund stays too large (the refundable amount only shrinks), hence ValidationError.
FINAL_ERRORS = frozenset(
    {
        PAYMENT_DECLINED,
        FRAUD_DETECTED,
        INSUFFICIENT_FUNDS,
        CARD_EXPIRED,
        ITEM_DISCONTINUED,
        REGION_NOT_SERVICED,
        ADDRESS_UNDELIVERABLE,
        VALIDATION,
    }
)
#: Business errors that depend on the current state: not stored, so a retry with the same key is carried
#: out again against the state it finds (restocked, shipment cancelled, ...).
STATE_DEPENDENT_ERRORS = frozenset(
    {OUT_OF_STOCK, INVALID_STATE, PAYMENT_NOT_FOUND, RESERVATION_NOT_FOUND, SHIPMENT_NOT_FOUND}
)


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"error": {"type": error_type, "message": message}}


def error_response(
    status_code: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(error_type, message), status_code=status_code, headers=headers)


class ServiceError(Exception):
    """A contract error. Raised inside an idempotent operation it is a business error, written to the
    ledger as ``failed``, and stored under the key only when it is final."""

    def __init__(self, status_code: int, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.status_code = status_code
        self.error_type = error_type
        self.message = message

    @property
    def final(self) -> bool:
        """Stored under the key and replayed (see FINAL_ERRORS); anything else is tried again."""
        return self.error_type in FINAL_ERRORS

    def body(self) -> dict[str, Any]:
        return error_body(self.error_type, self.message)
