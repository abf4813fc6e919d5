"""The order of a run, reached one way: validated in full where it enters, typed and trusted after."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_order_provider.exceptions import InvalidOrderError
from airflow_order_provider.models import parse_order
from airflow_order_provider.order_conf import order_id_of, order_of, order_payload, trusted_order
from harness.orders import EXAMPLE_ORDER


def run(conf, run_id="run-1"):
    return SimpleNamespace(dag_id="order_processing", run_id=run_id, conf=conf)


def test_the_trusted_parse_types_and_normalizes_as_the_full_validation():
    conf = {**EXAMPLE_ORDER, "customer_id": "  cus-7 "}
    order = order_of(run(conf, "run-normalized"))
    assert order == parse_order(conf)
    assert order.customer_id == "cus-7" and order.customer_tier == "standard" and order.on_retries_exhausted == {}
    assert order_payload(order)["service_level"] == "standard"


def test_the_checks_of_values_run_only_where_the_order_enters():
    conf = {**EXAMPLE_ORDER, "currency": "XYZ", "customer_email": "nope"}
    with pytest.raises(InvalidOrderError, match="currency") as failed:
        parse_order(conf)
    assert "customer_email" in str(failed.value)
    with pytest.raises(InvalidOrderError, match="total_amount"):
        parse_order({**EXAMPLE_ORDER, "total_amount": 1})
    assert trusted_order(conf).currency == "XYZ"
    assert trusted_order({**EXAMPLE_ORDER, "total_amount": 1}).total_amount == 1


@pytest.mark.parametrize("conf", [None, {}, {"order_id": "ord-1"}, {**EXAMPLE_ORDER, "items": "many"}, ["x"]])
def test_a_conf_that_is_no_order_has_no_order(conf):
    assert order_of(run(conf, f"run-{id(conf)}")) is None


def test_one_parse_per_run_and_a_changed_conf_parsed_again():
    conf = {**EXAMPLE_ORDER, "order_id": "ord-cache"}
    first = order_of(run(conf, "run-cache"))
    assert order_of(run(dict(conf), "run-cache")) is first
    changed = order_of(run({**conf, "customer_tier": "premium"}, "run-cache"))
    assert changed is not first and changed.customer_tier == "premium"


def test_the_order_is_frozen_for_its_shared_readers():
    order = order_of(run(EXAMPLE_ORDER, "run-frozen"))
    with pytest.raises(Exception, match="frozen"):
        order.customer_tier = "premium"


def test_the_order_id_of_any_run_shape():
    conf = {**EXAMPLE_ORDER, "order_id": "ord-42"}
    assert order_id_of(run(conf, "run-42")) == "ord-42"
    # The deadline callback's run is a dict, with dag_run_id.
    assert order_id_of({"dag_id": "order_processing", "dag_run_id": "run-43", "conf": conf}) == "ord-42"
    # A conf that failed validation still names its order; none at all: None.
    assert order_id_of(run({"order_id": "ord-bad"}, "run-44")) == "ord-bad"
    assert order_id_of(run(None, "run-45")) is None and order_id_of(None) is None
