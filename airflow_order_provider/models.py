"""
The order as the DAG receives it, and its validation.

Validation runs in the first task, before any service is called, and names every bad field.
Amounts are integers in minor units (cents).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_order_provider.exceptions import InvalidOrderError

#: ISO 4217 currency codes accepted for an order.
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
    GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW
    KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD
    NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
    SHP SLE SOS SRD SSP STN SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND
    VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL
    """.split()
)

ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

NonEmpty = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OrderItem(_Strict):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=10_000, strict=True)]
    unit_price: Annotated[int, Field(ge=0, strict=True)]


class ShippingAddress(_Strict):
    name: NonEmpty
    line1: NonEmpty
    line2: str | None = None
    city: NonEmpty
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    region: Annotated[str, Field(min_length=1, max_length=64)]


class Order(_Strict):
    """One order, exactly as the ``order_processing`` DAG takes it in its conf."""

    order_id: Annotated[str, Field(pattern=ORDER_ID_PATTERN)]
    customer_id: NonEmpty
    customer_email: str
    customer_tier: Literal["standard", "premium"] = "standard"
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=100)]
    shipping_address: ShippingAddress
    total_amount: Annotated[int, Field(ge=1, strict=True)]
    currency: str
    payment_method: NonEmpty
    #: A shorter workflow timeout for this order than the deployment's, in seconds.
    workflow_timeout_seconds: Annotated[int, Field(ge=1, strict=True)] | None = None
    #: What to do when a step runs out of retries, for this order only (the policy table's default
    #: otherwise): ``{"shipping": "pause"}``.
    on_retries_exhausted: dict[
        Literal["payment", "inventory", "shipping", "notification"], Literal["compensate", "pause", "fail"]
    ] = Field(default_factory=dict)

    @field_validator("customer_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("is not a valid email address")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError(f"unknown currency {value!r}; use an ISO 4217 code such as USD or EUR")
        return value

    @model_validator(mode="after")
    def _total_matches_items(self) -> Order:
        expected = sum(item.quantity * item.unit_price for item in self.items)
        if self.total_amount != expected:
            raise ValueError(
                f"total_amount: {self.total_amount} is not the sum of quantity x unit_price over the items"
                f" ({expected})"
            )
        return self

    @property
    def service_level(self) -> str:
        """Premium customers ship express."""
        return "express" if self.customer_tier == "premium" else "standard"


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{field}: is required"
    if error["type"] == "extra_forbidden":
        return f"{field}: is not a field of an order"
    if not field:  # a model-level check already names its field
        return message
    return f"{field}: {message}"


def parse_order(data: Any) -> Order:
    """Validate an order's conf; raise :class:`InvalidOrderError` naming every bad field."""
    if not isinstance(data, dict) or not data:
        raise InvalidOrderError(["the run's conf must be a JSON object describing the order"])
    try:
        return Order.model_validate(data)
    except ValidationError as exc:
        raise InvalidOrderError([_describe(e) for e in exc.errors()]) from None
