"""Request bodies. Validation failures answer 422 ``ValidationError`` naming the field path."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from order_services.limits import CURRENCIES, MAX_AMOUNT, MAX_QUANTITY, MAX_SEED

#: What ``str.strip()`` removes (the characters ``str.isspace()`` accepts), as a regex character class,
#: so that the published patterns and the validation agree on what "blank" is (JSON Schema's ``\s``
#: is not Python's).
WHITESPACE = "\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: No string of the contract holds U+0000 (PostgreSQL cannot store it in text).
NO_NUL = "^[^\\x00]*$"
NOT_BLANK = f"^[^\\x00]*[^{WHITESPACE}\\x00][^\\x00]*$"
EMAIL_PATTERN = f"^[{WHITESPACE}]*[^@{WHITESPACE}\\x00]+@[^@{WHITESPACE}\\x00]+[{WHITESPACE}]*$"
_EMAIL = re.compile(EMAIL_PATTERN)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (U+0000)")
    return value


def _stripped(value: str) -> str:
    stripped = _no_nul(value).strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("must be an e-mail address (name@domain)")
    return value.strip()


def free_text(max_length: int, min_length: int = 0) -> Any:
    """Any text of ``min_length``..``max_length`` characters, kept as sent (no NUL)."""
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length, "pattern": NO_NUL}
    if min_length:
        schema["minLength"] = min_length
    return Annotated[
        str,
        Field(strict=True, min_length=min_length, max_length=max_length),
        AfterValidator(_no_nul),
        WithJsonSchema(schema),
    ]


def text(max_length: int, *, blank: bool = False) -> Any:
    """A string of at most ``max_length`` characters as sent, stripped of surrounding whitespace; unless
    ``blank``, it must have something else than whitespace."""
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if blank:
        return Annotated[
            str,
            Field(strict=True, max_length=max_length),
            AfterValidator(lambda value: _no_nul(value).strip()),
            WithJsonSchema({**schema, "pattern": NO_NUL}),
        ]
    return Annotated[
        str,
        Field(strict=True, max_length=max_length),
        AfterValidator(_stripped),
        WithJsonSchema({**schema, "minLength": 1, "pattern": NOT_BLANK}),
    ]


#: Identifiers and names: 1..255 characters as sent, not blank, stripped.
Text = text(255)


def _integral(value: Any) -> Any:
    """A JSON number without a fractional part is an integer (JSON Schema's rule): 2.0 and 1e3 count;
    10.5, "100" and true do not (strict validation refuses them)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def integer(*, ge: int, le: int) -> Any:
    """A JSON integer in ``ge..le`` (an integral float such as 2.0 counts)."""
    return Annotated[int, Field(strict=True, ge=ge, le=le), BeforeValidator(_integral)]


#: An amount in minor units, 1..MAX_AMOUNT.
Amount = integer(ge=1, le=MAX_AMOUNT)
Quantity = integer(ge=1, le=MAX_QUANTITY)
#: Characters of an e-mail body: even escaped, a body this long fits in a request (limits.MAX_BODY_BYTES).
MAX_EMAIL_BODY = 16_000


def _iso_currency(value: str) -> str:
    if value not in CURRENCIES:
        raise ValueError(f"unknown currency {value!r}: use an upper-case ISO 4217 code such as EUR or USD")
    return value


Currency = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_iso_currency),
    WithJsonSchema({"type": "string", "enum": sorted(CURRENCIES), "description": "ISO 4217 code"}),
]

PaymentMethod = Literal[
    "pm_card_ok",
    "pm_card_declined",
    "pm_card_fraud",
    "pm_card_insufficient_funds",
    "pm_card_expired",
]
ServiceName = Literal["payment", "inventory", "shipping", "notification"]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChargeRequest(Body):
    order_id: Text
    customer_id: Text
    amount: Amount
    currency: Currency
    payment_method: PaymentMethod


class RefundRequest(Body):
    reason: free_text(1000)  # type: ignore[valid-type]
    amount: Amount | None = None


class ReservationItem(Body):
    sku: Text
    quantity: Quantity


class ReservationRequest(Body):
    order_id: Text
    items: Annotated[list[ReservationItem], Field(min_length=1, max_length=100)]
    region: Text
    priority: Literal["normal", "high"] = "normal"


class ReasonRequest(Body):
    reason: free_text(1000) | None = None  # type: ignore[valid-type]


class Address(Body):
    name: Text
    line1: Text
    line2: text(255, blank=True) | None = None  # type: ignore[valid-type]
    city: Text
    postal_code: Text
    country: Text
    region: Text


class ShipmentRequest(Body):
    order_id: Text
    reservation_id: Text
    address: Address
    service_level: Literal["standard", "express"] = "standard"


class EmailRequest(Body):
    order_id: Text
    to: Annotated[
        str,
        Field(strict=True, max_length=320),
        AfterValidator(_email),
        WithJsonSchema({"type": "string", "maxLength": 320, "pattern": EMAIL_PATTERN}),
    ]
    subject: free_text(1000, min_length=1)  # type: ignore[valid-type]
    body: free_text(MAX_EMAIL_BODY)  # type: ignore[valid-type]


class FaultRequest(Body):
    service: ServiceName
    error_rate: Annotated[float, Field(strict=True, ge=0.0, le=1.0)] = 0.0
    latency_ms: integer(ge=0, le=600_000) = 0  # type: ignore[valid-type]
    seed: integer(ge=0, le=MAX_SEED) | None = None  # type: ignore[valid-type]
    phase: Literal["before", "after"] = "before"


# -- Answers (documented in the OpenAPI schema; the handlers build the same shapes as dicts) ---------


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class RefundAnswer(Answer):
    refund_id: str
    payment_id: str
    order_id: str
    amount: int
    status: Literal["succeeded"]
    reason: str


class ChargeAnswer(Answer):
    payment_id: str
    order_id: str
    customer_id: str
    amount: int
    currency: str
    status: Literal["succeeded", "partially_refunded", "refunded"]
    refunded_amount: int
    transaction_ref: str
    processed_at: str


class ChargeWithRefunds(ChargeAnswer):
    refunds: list[RefundAnswer]


class ChargeList(Answer):
    charges: list[ChargeWithRefunds]


class ReservationLine(Answer):
    sku: str
    quantity: int


class ReservationAnswer(Answer):
    reservation_id: str
    order_id: str
    items: list[ReservationLine]
    region: str
    warehouse_id: str
    priority: Literal["normal", "high"]
    status: Literal["held", "committed", "released", "expired"]
    expires_at: str


class ReservationList(Answer):
    reservations: list[ReservationAnswer]


class ReleaseAnswer(Answer):
    reservation_id: str
    status: Literal["released"]


class StockAnswer(Answer):
    sku: str
    on_hand: int
    reserved: int
    available: int


class AddressAnswer(Answer):
    name: str
    line1: str
    line2: str | None = None
    city: str
    postal_code: str
    country: str
    region: str


class ShipmentAnswer(Answer):
    shipment_id: str
    order_id: str
    reservation_id: str
    tracking_number: str
    carrier: str
    service_level: Literal["standard", "express"]
    address: AddressAnswer
    status: Literal["scheduled", "dispatched", "cancelled"]
    estimated_delivery: str
    dispatch_at: str


class ShipmentList(Answer):
    shipments: list[ShipmentAnswer]


class CancelAnswer(Answer):
    shipment_id: str
    status: Literal["cancelled"]


class EmailAnswer(Answer):
    message_id: str
    order_id: str
    to: str
    status: Literal["queued"]


class OutboxMessage(EmailAnswer):
    subject: str
    body: str
    created_at: str


class Outbox(Answer):
    messages: list[OutboxMessage]


class AuditEntry(Answer):
    id: int
    service: ServiceName
    operation: Literal["charge", "refund", "reserve", "release", "schedule", "cancel", "email"]
    status: Literal["succeeded", "failed", "expired"]
    idempotency_key: str | None
    created_at: str
    details: dict[str, Any]


class AuditAnswer(Answer):
    order_id: str
    entries: list[AuditEntry]


class FaultConfigAnswer(Answer):
    service: ServiceName
    error_rate: float
    latency_ms: int
    seed: int
    phase: Literal["before", "after"]


class ReceivedCounts(Answer):
    payment: int
    inventory: int
    shipping: int
    notification: int


class FaultList(Answer):
    faults: list[FaultConfigAnswer]
    received: ReceivedCounts


class FaultsCleared(Answer):
    faults: list[FaultConfigAnswer]


class HealthAnswer(Answer):
    status: Literal["ok"]


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"type": "<ErrorName>", "message": "<human text>"}}``."""

    error: ErrorDetail
