from __future__ import annotations

import copy

import pytest

from airflow_order_provider.exceptions import InvalidOrderError
from airflow_order_provider.models import parse_order
from harness.orders import EXAMPLE_ORDER as GOOD


def variant(**changes):
    order = copy.deepcopy(GOOD)
    for path, value in changes.items():
        target = order
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is KeyError:
            del target[leaf]
        else:
            target[leaf] = value
    return order


def test_the_example_order_is_valid():
    order = parse_order(GOOD)
    assert order.total_amount == 2500
    assert order.service_level == "standard"
    assert parse_order(variant(customer_tier="premium")).service_level == "express"


@pytest.mark.parametrize(
    ("order", "field", "says"),
    [
        (variant(customer_email=KeyError), "customer_email", "is required"),
        (variant(items__0__quantity=0), "items.0.quantity", "greater than or equal to 1"),
        (variant(total_amount=2400), "total_amount", "not the sum of quantity x unit_price"),
        (variant(currency="XYZ"), "currency", "unknown currency 'XYZ'"),
        (variant(customer_email="ada.example.com"), "customer_email", "not a valid email"),
        (variant(items=[]), "items", "at least 1 item"),
        (variant(shipping_address__country="Britain"), "shipping_address.country", "pattern"),
        (variant(order_id="ord 1001; drop"), "order_id", "pattern"),
        (variant(total_amount="2500"), "total_amount", "valid integer"),
        (variant(customer_tier="gold"), "customer_tier", "'standard' or 'premium'"),
        (variant(coupon="FREE"), "coupon", "is not a field of an order"),
    ],
)
def test_a_bad_order_names_the_field(order, field, says):
    with pytest.raises(InvalidOrderError) as raised:
        parse_order(order)
    problem = next(p for p in raised.value.problems if p.startswith(f"{field}:"))
    assert says in problem


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(InvalidOrderError) as raised:
        parse_order(variant(currency="XYZ", customer_email="nope"))
    assert [p.split(":")[0] for p in raised.value.problems] == ["customer_email", "currency"]


@pytest.mark.parametrize("conf", [None, {}, [], "ord-1001"])
def test_a_conf_that_is_not_an_order(conf):
    with pytest.raises(InvalidOrderError, match="conf must be a JSON object"):
        parse_order(conf)


@pytest.mark.parametrize("order_id", ["ord-1001\n", " ord-1001", "ord-1001\t", "ord\n1001"])
def test_an_order_id_with_whitespace_is_refused_not_stripped(order_id):
    # Stripped, it would be one id in the run's conf and another in the steps: signals sent to it
    # would be recorded under a name no step reads.
    with pytest.raises(InvalidOrderError) as raised:
        parse_order(variant(order_id=order_id))
    assert any(p.startswith("order_id:") for p in raised.value.problems)


def test_the_trigger_form_refuses_what_the_order_model_refuses():
    """The DAG's params are the order model's JSON schema: a newline, a huge amount are refused there too."""
    import jsonschema

    from airflow_order_provider.models import MAX_AMOUNT, order_field_schemas

    schemas = order_field_schemas()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("ord-1001\n", schemas["order_id"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(MAX_AMOUNT + 1, schemas["total_amount"])
    jsonschema.validate(GOOD["items"], schemas["items"])
    jsonschema.validate(None, schemas["workflow_timeout_seconds"])


@pytest.mark.parametrize(("field", "value"), [("total_amount", 2**63), ("items__0__unit_price", 2**63),
                                              ("items__0__quantity", 10_001)])
def test_amounts_and_quantities_have_bounds(field, value):
    with pytest.raises(InvalidOrderError) as raised:
        parse_order(variant(**{field: value}))
    assert any(p.startswith(field.replace("__", ".")) for p in raised.value.problems)


def test_the_accepted_currencies_are_pycountrys_iso_4217_list_less_what_is_no_money():
    """Read from pycountry's data file without importing pycountry: the same list."""
    import subprocess
    import sys

    import pycountry

    from airflow_order_provider.models import NOT_MONEY, accepted_currencies

    assert accepted_currencies() == frozenset(c.alpha_3 for c in pycountry.currencies) - NOT_MONEY
    assert {"EUR", "USD", "JPY"} <= accepted_currencies()
    code = ("import sys; from airflow_order_provider.models import accepted_currencies;"
            "assert 'EUR' in accepted_currencies(); print('pycountry' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False"]


def test_currencies_come_from_the_iso_4217_list():
    assert parse_order(variant(currency="EUR")).currency == "EUR"
    with pytest.raises(InvalidOrderError):
        parse_order(variant(currency="xyz"))


def test_the_form_params_are_draft_7_schemas_that_check_what_the_model_checks():
    """
    The params declare JSON Schema draft 7 (Airflow validates them on every parse, trigger and task
    start; draft 2020-12's meta-schema check is 4x slower): each schema must be a valid draft-7
    schema, use no keyword draft 7 ignores, and still refuse what the model refuses.
    """
    import jsonschema

    from airflow_order_provider.models import MAX_AMOUNT
    from airflow_order_provider.order_form import EXAMPLE_ORDER, PARAM_SCHEMA_DIALECT, order_params

    params = order_params(EXAMPLE_ORDER)
    only_2020_12 = {"$defs", "$dynamicRef", "$dynamicAnchor", "prefixItems", "dependentRequired",
                    "dependentSchemas", "unevaluatedItems", "unevaluatedProperties", "$anchor"}

    def keywords(schema):
        if isinstance(schema, dict):
            for key, value in schema.items():
                yield key
                yield from keywords(value)
        elif isinstance(schema, list):
            for value in schema:
                yield from keywords(value)

    for name, param in params.items():
        assert param.schema["$schema"] == PARAM_SCHEMA_DIALECT
        assert jsonschema.validators.validator_for(param.schema) is jsonschema.Draft7Validator, name
        jsonschema.Draft7Validator.check_schema(param.schema)
        assert not only_2020_12 & set(keywords(param.schema)), name
        param.resolve(EXAMPLE_ORDER.get(name, param.value))
    with pytest.raises(Exception, match="does not match|not valid"):
        params["order_id"].resolve("ord-1001\n")
    with pytest.raises(Exception, match="greater than the maximum|not valid"):
        params["total_amount"].resolve(MAX_AMOUNT + 1)
