"""Step and compensation operators: policy defaults, no work at parse time, real calls at run time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.sdk import DAG

from airflow_order_provider.exceptions import PaymentDeclinedError
from airflow_order_provider.operators.base import idempotency_key
from airflow_order_provider.operators.inventory import ReleaseInventoryOperator, ReserveInventoryOperator
from airflow_order_provider.operators.notification import SendOrderConfirmationOperator, format_amount
from airflow_order_provider.operators.payment import ProcessPaymentOperator, RefundPaymentOperator
from airflow_order_provider.operators.shipping import CancelShipmentOperator, ScheduleShipmentOperator
from airflow_order_provider.policies import PAYMENT
from airflow_order_provider.version_compat import HAS_RETRY_POLICY, exponential_backoff
from harness.orders import ledger

ADDRESS = {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London",
           "postal_code": "SW1Y 4JH", "country": "GB", "region": "eu-west"}
ITEMS = [{"sku": "SKU-RED-MUG", "quantity": 2, "unit_price": 1250}]


def payment_op(order_id="ord-1", **kwargs):
    kwargs.setdefault("task_id", "process_payment")
    return ProcessPaymentOperator(order_id=order_id, customer_id="cus-42", amount=2500, currency="USD",
                                  payment_method=kwargs.pop("payment_method", "pm_card_ok"), **kwargs)


def test_policy_table_gives_the_defaults():
    op = payment_op()
    assert op.retries == PAYMENT.attempts - 1
    assert op.retry_exponential_backoff == exponential_backoff(PAYMENT.backoff)
    # Airflow 3.3+: the retry policy; before, the operator fails never-retried errors itself.
    assert (getattr(op, "retry_policy", None) is not None) is HAS_RETRY_POLICY
    assert op.execution_timeout >= timedelta(seconds=5)


def test_explicit_arguments_and_default_args_win_over_the_table():
    assert payment_op(retries=7).retries == 7
    with DAG("policy_override", schedule=None, default_args={"retries": 4}):
        assert payment_op().retries == 4


def test_construction_touches_no_connection():
    op = payment_op(conn_id="no_such_connection")
    assert op.conn_id == "no_such_connection"
    assert "hook" not in op.__dict__


def test_templated_fields_are_the_business_arguments():
    assert set(ProcessPaymentOperator.template_fields) == {
        "order_id", "customer_id", "amount", "currency", "payment_method", "on_retries_exhausted",
        "workflow_timeout"}
    assert "address" in ScheduleShipmentOperator.template_fields
    assert "shipment" in SendOrderConfirmationOperator.template_fields


def test_idempotency_key_depends_on_order_and_action_only():
    assert payment_op(order_id="ord-7").idempotency_key == idempotency_key("ord-7", "payment.charge")
    assert idempotency_key("ord-7", "payment.charge") == "ord-7:payment.charge"


def test_hook_is_cached(service_double):
    op = payment_op()
    assert op.hook is op.hook
    assert op.hook.conn_id == "order_payment_default"


def test_steps_and_compensations_against_the_services(service_connections, order_id):
    payment = payment_op(order_id).call_service({})
    assert set(payment) == {"payment_id", "amount", "currency", "status", "transaction_ref"}
    reservation = ReserveInventoryOperator(
        task_id="reserve", order_id=order_id, items=ITEMS, region="eu-west").call_service({})
    shipment = ScheduleShipmentOperator(
        task_id="ship", order_id=order_id, reservation_id=reservation["reservation_id"],
        address=ADDRESS, service_level="express").call_service({})
    assert shipment["service_level"] == "express" and shipment["tracking_number"]
    confirmation = SendOrderConfirmationOperator(
        task_id="confirm", order_id=order_id, customer_email="ada@example.com", items=ITEMS,
        total_amount=2500, currency="USD", shipment=shipment).call_service({})
    assert confirmation["status"] == "queued"
    email = service_connections.get(f"/notification/outbox?order_id={order_id}")["messages"][0]
    assert shipment["tracking_number"] in email["body"] and "25.00 USD" in email["body"]

    CancelShipmentOperator(task_id="c1", order_id=order_id, shipment_id=shipment["shipment_id"]).execute({})
    ReleaseInventoryOperator(
        task_id="c2", order_id=order_id, reservation_id=reservation["reservation_id"]).execute({})
    refund = RefundPaymentOperator(task_id="c3", order_id=order_id, payment_id=payment["payment_id"]).execute({})
    assert refund["amount"] == 2500
    assert ledger(service_connections, order_id) == [
        ("payment", "charge", "succeeded"),
        ("inventory", "reserve", "succeeded"),
        ("shipping", "schedule", "succeeded"),
        ("notification", "email", "succeeded"),
        ("shipping", "cancel", "succeeded"),
        ("inventory", "release", "succeeded"),
        ("payment", "refund", "succeeded"),
    ]


def test_running_a_step_twice_changes_nothing_twice(service_connections, order_id):
    assert payment_op(order_id).call_service({}) == payment_op(order_id).call_service({})
    assert ledger(service_connections, order_id) == [("payment", "charge", "succeeded")]


def test_a_declined_card_raises_the_payment_error(service_connections, order_id):
    with pytest.raises(PaymentDeclinedError):
        payment_op(order_id, payment_method="pm_card_declined").call_service({})


@pytest.mark.parametrize(("amount", "currency", "text"),
                         [(2500, "USD", "25.00 USD"), (5, "EUR", "0.05 EUR"), (500, "JPY", "500 JPY")])
def test_amounts_in_emails(amount, currency, text):
    assert format_amount(amount, currency) == text


def test_a_refund_after_a_partial_refund_refunds_the_rest(service_connections, order_id):
    payment = payment_op(order_id).call_service({})
    service_connections.post(f"/payment/charges/{payment['payment_id']}/refund", {"reason": "goodwill", "amount": 1000},
                             idempotency_key=f"{order_id}:manual-refund")
    # without an id: the compensation undoes what is still in effect for the order (1500 of 2500)
    refund = RefundPaymentOperator(task_id="refund", order_id=order_id).execute({})
    assert refund["amount"] == 1500
    charge = service_connections.get(f"/payment/charges/{payment['payment_id']}")
    assert (charge["status"], charge["refunded_amount"]) == ("refunded", 2500)
    assert ledger(service_connections, order_id) == [
        ("payment", "charge", "succeeded"), ("payment", "refund", "succeeded"), ("payment", "refund", "succeeded")]


def test_a_saga_step_gets_the_validated_order_from_the_conf_as_validate_order_pushes_it():
    """
    Steps read the validated order, typed, from the run's conf (no read of its XCom); whitespace
    normalized the same way, nothing derived missing. When the conf is no order (validate_order was
    given its ``order``), the steps read the XCom.
    """
    from types import SimpleNamespace

    from airflow_order_provider.operators.order import ValidateOrderOperator
    from airflow_order_provider.order_saga import ORDER_SAGA
    from harness.orders import EXAMPLE_ORDER

    conf = {**EXAMPLE_ORDER, "customer_id": "  cus-1  "}
    run = SimpleNamespace(dag_id="order_processing", run_id="run-1", conf=conf)
    pushed = ValidateOrderOperator(task_id="validate_order").execute({"dag_run": run})
    step = ReserveInventoryOperator(task_id="reserve_inventory", saga=ORDER_SAGA)
    order = step.saga_input({"dag_run": run})
    assert ValidateOrderOperator.normalized(order) == pushed
    assert order.customer_id == "cus-1" and pushed["service_level"]

    class Ti:  # the steps' only route to validate_order's XCom
        def xcom_pull(self, task_ids, key="return_value"):
            return pushed if task_ids == "validate_order" else None

    # A conf that is no order at all: the steps read what validate_order pushed.
    given = ReserveInventoryOperator(task_id="reserve_inventory", saga=ORDER_SAGA)
    no_order = SimpleNamespace(dag_id="order_processing", run_id="run-2", conf={"note": "no order"})
    assert given.saga_input({"dag_run": no_order, "ti": Ti()}) == order
