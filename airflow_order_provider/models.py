"""
The order as the DAG receives it, and its validation.

Validation runs where an order enters (``POST /orders``, the first task), before any service is
called, and names every bad field. Everything after reads the order through
:mod:`airflow_order_provider.order_conf`, parsed with :data:`TRUSTED`: the same types and
normalization, without the checks of values the entry made. Amounts are integers in minor units
(cents).
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from airflow_order_provider.exceptions import InvalidOrderError
from airflow_order_provider.policies import ExhaustedMode
from airflow_order_provider.services import SERVICES

#: A service's name, as the order's ``on_retries_exhausted`` keys it.
ServiceName = Literal[tuple(SERVICES)]  # type: ignore[valid-type]


#: ISO 4217 codes that are no money an order can be paid in: precious metals, SDRs, bond-market
#: units, the testing code and "no currency".
NOT_MONEY = frozenset({"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"})


@functools.cache
def accepted_currencies() -> frozenset[str]:
    """
    The ISO 4217 currency codes accepted for an order: the maintained ``pycountry`` list, less
    :data:`NOT_MONEY`. Read on first use (validating an order), not when a DAG file is parsed:
    every task of every order parses the DAG file, and the list is not needed there.

    Read from pycountry's own ISO 4217 data file, found without importing the package: importing
    ``pycountry`` looks up its installed version through the package metadata, which cost every
    step about 10 ms of CPU. If the file is not where pycountry keeps it, pycountry is imported.
    """
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.find_spec("pycountry")
    for location in (spec.submodule_search_locations or []) if spec else []:
        data = Path(location) / "databases" / "iso4217.json"
        if data.is_file():
            entries = json.loads(data.read_text(encoding="utf-8"))["4217"]
            return frozenset(entry["alpha_3"] for entry in entries) - NOT_MONEY
    import pycountry

    return frozenset(currency.alpha_3 for currency in pycountry.currencies) - NOT_MONEY

#: The largest amount (a unit price, a total) in minor units: 10^12 (ten billion in major units).
#: The reference services take the same bound; past it an order is refused by name, never sent.
MAX_AMOUNT = 10**12
#: The largest quantity of one order line.
MAX_QUANTITY = 10_000

#: An order id: no whitespace anywhere, a trailing newline included (``(?!\n)`` stops ``$`` from
#: matching before one, as Python's and JSON Schema validators otherwise do).
ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(?!\n)$"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

NonEmpty = Annotated[str, Field(min_length=1, max_length=200)]


#: The validation context of an order validated where it entered: the checks of its values
#: (:func:`_checked`) are skipped, its types and normalization are not.
TRUSTED: dict[str, bool] = {"trusted": True}


def _checked(info: ValidationInfo) -> bool:
    """Whether the values are checked (not an order parsed with :data:`TRUSTED`)."""
    return not (info.context and info.context.get("trusted"))


class _Strict(BaseModel):
    # Frozen: one parsed order is shared by every reader of a run in a process (order_conf).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, regex_engine="python-re", frozen=True)


class OrderItem(_Strict):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]
    unit_price: Annotated[int, Field(ge=0, le=MAX_AMOUNT, strict=True, description="In minor units (cents).")]


class ShippingAddress(_Strict):
    name: NonEmpty
    line1: NonEmpty
    line2: str | None = None
    city: NonEmpty
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    region: Annotated[str, Field(min_length=1, max_length=64)]


class Order(_Strict):
    """One order, exactly as the ``order_processing`` DAG takes it in its conf (and its trigger form)."""

    order_id: Annotated[str, Field(
        pattern=ORDER_ID_PATTERN, title="Order id",
        description="Unique id of the order; a second run of the same order charges nothing twice.",
    )]
    customer_id: Annotated[str, Field(min_length=1, max_length=200, title="Customer id")]
    customer_email: Annotated[str, Field(title="Customer email")]
    customer_tier: Annotated[Literal["standard", "premium"], Field(
        title="Customer tier", description="Premium orders ship express.")] = "standard"
    items: Annotated[list[OrderItem], Field(
        min_length=1, max_length=100, title="Items",
        description="Order lines; unit_price in minor units (cents).")]
    shipping_address: Annotated[ShippingAddress, Field(title="Shipping address")]
    total_amount: Annotated[int, Field(
        ge=1, le=MAX_AMOUNT, strict=True, title="Total amount",
        description="In minor units; must equal the sum of quantity x unit_price.")]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", title="Currency", description="ISO 4217 code.")]
    payment_method: Annotated[str, Field(
        min_length=1, max_length=200, title="Payment method",
        description="Test values of the reference payment service: see the README.",
        examples=["pm_card_ok", "pm_card_declined", "pm_card_fraud", "pm_card_insufficient_funds",
                  "pm_card_expired"],
    )]
    #: A shorter workflow timeout for this order than the deployment's, in seconds.
    workflow_timeout_seconds: Annotated[int | None, Field(
        ge=1, strict=True, title="Workflow timeout (optional)",
        description="Seconds this order's processing may take, if less than the deployment's.")] = None
    #: What to do when a step runs out of retries, for this order only (the policy table's default
    #: otherwise): ``{"shipping": "pause"}``.
    on_retries_exhausted: Annotated[
        dict[ServiceName, ExhaustedMode],
        Field(title="On retries exhausted (optional)",
              description='Per service, for this order: compensate, pause or fail. Example: {"shipping": "pause"}'),
    ] = Field(default_factory=dict)

    @field_validator("order_id", mode="before")
    @classmethod
    def _no_whitespace(cls, value: Any, info: ValidationInfo) -> Any:
        # Checked before whitespace is stripped: an id with a space or a newline would be one id in
        # the run's conf and another in the steps, and signals to it would go astray.
        if _checked(info) and isinstance(value, str) and any(ch.isspace() for ch in value):
            raise ValueError(f"String should match pattern '{ORDER_ID_PATTERN}': no whitespace, no newline")
        return value

    @field_validator("customer_email")
    @classmethod
    def _email(cls, value: str, info: ValidationInfo) -> str:
        if _checked(info) and not _EMAIL.match(value):
            raise ValueError("is not a valid email address")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str, info: ValidationInfo) -> str:
        if _checked(info) and value not in accepted_currencies():
            raise ValueError(f"unknown currency {value!r}; use an ISO 4217 code such as USD or EUR")
        return value

    @model_validator(mode="after")
    def _total_matches_items(self, info: ValidationInfo) -> Order:
        if not _checked(info):
            return self
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


def describe_error(error: dict[str, Any]) -> str:
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
        raise InvalidOrderError([describe_error(e) for e in exc.errors()]) from None


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """The schema with ``$ref``s replaced by their definitions, and ``X | None`` as a type list."""
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _inline(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    schema = {key: _inline(value, defs) for key, value in schema.items() if key != "$defs"}
    options = schema.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        (other,) = [o for o in options if o != {"type": "null"}]
        if isinstance(other.get("type"), str):
            del schema["anyOf"]
            schema = {**other, **schema, "type": [other["type"], "null"]}
    return schema


def order_field_schemas() -> dict[str, dict[str, Any]]:
    """Each field of :class:`Order` as a self-contained JSON schema (the trigger form's fields)."""
    schema = Order.model_json_schema()
    defs = schema.get("$defs", {})
    return {name: _inline(field, defs) for name, field in schema["properties"].items()}
