"""
The order DAG's trigger form: its ``params``, one per field of the order, with their JSON schemas.

The schemas are the order model's (:class:`airflow_order_provider.models.Order`), generated into
``order_form.json`` beside this module, so that parsing a DAG file builds its form without building
the pydantic models: every parse of the DAG file (the DAG processor's, and each task's at its
start) would otherwise pay about 10 ms for them. ``tests/unit/test_order_form.py`` fails when the
file and the model part; regenerate it with ``make order-form``
(``python -m airflow_order_provider.order_form --write``).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

#: The generated file: ``{"fields": {name: {"schema": ..., "default": ...}}}`` in the model's order,
#: with a ``default`` for the optional fields only.
FORM_FILE = Path(__file__).with_name("order_form.json")

#: The JSON Schema dialect the DAG's params declare. Airflow validates every param against its schema
#: with ``jsonschema`` each time it resolves it: when serializing each task of the DAG (every
#: parse), when a run is triggered and when each task starts. Without ``$schema`` that is draft
#: 2020-12, whose meta-schema check alone made serializing the order DAG 0.3-0.4 s instead of
#: 0.03 s and cost each task 15 ms; draft 7 checks the same (inlined) field schemas 4x faster.
PARAM_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"

#: An example order: the trigger form's defaults, the README's example.
EXAMPLE_ORDER: dict[str, Any] = {
    "order_id": "ord-1001",
    "customer_id": "cus-42",
    "customer_email": "ada@example.com",
    "customer_tier": "standard",
    "items": [{"sku": "SKU-RED-MUG", "quantity": 2, "unit_price": 1250}],
    "shipping_address": {
        "name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London",
        "postal_code": "SW1Y 4JH", "country": "GB", "region": "eu-west",
    },
    "total_amount": 2500,
    "currency": "USD",
    "payment_method": "pm_card_ok",
}


def form_fields() -> dict[str, dict[str, Any]]:
    """The generated fields: ``{name: {"schema": <JSON schema>[, "default": <the model's default>]}}``."""
    return json.loads(FORM_FILE.read_text(encoding="utf-8"))["fields"]


def order_params(example: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    The DAG's ``params``: one form field per order field, pre-filled from ``example`` (default
    :data:`EXAMPLE_ORDER`), an optional field the example leaves out with the model's default.
    Airflow refuses a run whose conf does not fit them.
    """
    from airflow.sdk import Param

    example = EXAMPLE_ORDER if example is None else example
    params = {}
    for name, field in form_fields().items():
        schema = {**field["schema"], "$schema": PARAM_SCHEMA_DIALECT}
        if name in example:
            params[name] = Param(copy.deepcopy(example[name]), **schema)
        elif "default" in field:
            params[name] = Param(copy.deepcopy(field["default"]), **schema)
        else:  # a required field the example leaves out: the form asks for it
            params[name] = Param(**schema)
    return params


def generate() -> dict[str, Any]:
    """What ``order_form.json`` must hold: the fields of :class:`~airflow_order_provider.models.Order`."""
    from airflow_order_provider.models import Order, order_field_schemas

    fields = {}
    for name, schema in order_field_schemas().items():
        schema = dict(schema)
        schema.pop("default", None)
        model_field = Order.model_fields[name]
        fields[name] = {"schema": schema}
        if not model_field.is_required():
            fields[name]["default"] = model_field.get_default(call_default_factory=True)
    return {
        "$comment": "Generated from airflow_order_provider.models.Order by `make order-form`; do not edit.",
        "fields": fields,
    }


def render() -> str:
    return json.dumps(generate(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        FORM_FILE.write_text(render(), encoding="utf-8")
        print(f"wrote {FORM_FILE}")
        return 0
    print("usage: python -m airflow_order_provider.order_form --write", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
