"""The trigger form is generated from the order model, and parsing the DAG file does not build the model."""

from __future__ import annotations

import json
import subprocess
import sys

from airflow_order_provider.order_form import EXAMPLE_ORDER, FORM_FILE, generate, order_params
from harness.common import REPO_ROOT


def test_the_generated_form_is_the_order_models():
    """Fails when the order model changed and `make order-form` was not run."""
    assert json.loads(FORM_FILE.read_text(encoding="utf-8")) == generate()


def test_the_form_has_a_field_per_order_field_prefilled_with_the_example():
    from airflow_order_provider.models import Order

    params = order_params()
    assert list(params) == list(Order.model_fields)
    for name, param in params.items():
        expected = EXAMPLE_ORDER[name] if name in EXAMPLE_ORDER else Order.model_fields[name].get_default(
            call_default_factory=True)
        assert param.value == expected, name
    assert params["on_retries_exhausted"].value == {}
    assert params["workflow_timeout_seconds"].value is None


def test_the_form_does_not_share_the_example_it_was_given():
    example = json.loads(json.dumps(EXAMPLE_ORDER))
    params = order_params(example)
    example["items"][0]["quantity"] = 99
    assert params["items"].value[0]["quantity"] == 2


def test_parsing_the_order_dag_builds_no_pydantic_model():
    """The models are built by the tasks that validate an order, not by every parse of the DAG file."""
    code = (
        "import sys; from tests.compat import dag_bag_class; DagBag = dag_bag_class();"
        f"bag = DagBag({str(REPO_ROOT / 'dags' / 'order_processing.py')!r});"
        "assert not bag.import_errors, bag.import_errors;"
        "assert 'order_processing' in bag.dags;"
        "print(sorted(m for m in sys.modules if m.startswith('airflow_order_provider.models')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         cwd=REPO_ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]"
