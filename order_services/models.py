"""Request bodies. Validation failures answer 422 ``ValidationError`` naming the field path."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
PositiveInt = Annotated[int, Field(strict=True, gt=0)]

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
    amount: PositiveInt
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$", to_upper=True)]
    payment_method: PaymentMethod


class RefundRequest(Body):
    reason: Annotated[str, StringConstraints(max_length=1000)]
    amount: PositiveInt | None = None


class ReservationItem(Body):
    sku: Text
    quantity: PositiveInt


class ReservationRequest(Body):
    order_id: Text
    items: Annotated[list[ReservationItem], Field(min_length=1, max_length=100)]
    region: Text
    priority: Literal["normal", "high"] = "normal"


class ReasonRequest(Body):
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None


class Address(Body):
    name: Text
    line1: Text
    line2: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] | None = None
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
    to: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
    subject: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    body: Annotated[str, StringConstraints(max_length=100_000)]


class FaultRequest(Body):
    service: ServiceName
    error_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    latency_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    seed: int | None = None
    phase: Literal["before", "after"] = "before"
