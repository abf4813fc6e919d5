"""
order_processing: one run per order, orchestrating payment, inventory, shipping and confirmation.

Trigger it from the UI's form (pre-filled with an example order) or through the REST API with the
order as the run's conf. The services, retry policies and timeouts come from the
``airflow-order-provider`` package; see its README for the order's fields and the test values.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_order_provider.models import ORDER_ID_PATTERN
from airflow_order_provider.operators.inventory import ReserveInventoryOperator
from airflow_order_provider.operators.notification import SendOrderConfirmationOperator
from airflow_order_provider.operators.order import CompleteOrderOperator, ValidateOrderOperator
from airflow_order_provider.operators.payment import ProcessPaymentOperator
from airflow_order_provider.operators.shipping import ScheduleShipmentOperator


def order(field: str) -> str:
    """Template for a field of the validated order (the ``validate_order`` task's result)."""
    return "{{ ti.xcom_pull(task_ids='validate_order')['" + field + "'] }}"


def result(task_id: str, field: str | None = None) -> str:
    """Template for a step's result, or one field of it."""
    pull = f"ti.xcom_pull(task_ids='{task_id}')"
    return "{{ " + (f"{pull}['{field}']" if field else pull) + " }}"


ADDRESS_SCHEMA = {
    "type": "object",
    "required": ["name", "line1", "city", "postal_code", "country", "region"],
    "properties": {
        "name": {"type": "string"},
        "line1": {"type": "string"},
        "line2": {"type": ["string", "null"]},
        "city": {"type": "string"},
        "postal_code": {"type": "string"},
        "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
        "region": {"type": "string"},
    },
}
ITEM_SCHEMA = {
    "type": "object",
    "required": ["sku", "quantity", "unit_price"],
    "properties": {
        "sku": {"type": "string"},
        "quantity": {"type": "integer", "minimum": 1},
        "unit_price": {"type": "integer", "minimum": 0},
    },
}

with DAG(
    dag_id="order_processing",
    description="Payment, inventory, shipping and confirmation for one order",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["orders"],
    doc_md=__doc__,
    default_args={"owner": "orders"},
    params={
        "order_id": Param(
            "ord-1001", type="string", pattern=ORDER_ID_PATTERN, title="Order id",
            description="Unique id of the order; a second run of the same order charges nothing twice.",
        ),
        "customer_id": Param("cus-42", type="string", minLength=1, title="Customer id"),
        "customer_email": Param("ada@example.com", type="string", title="Customer email"),
        "customer_tier": Param(
            "standard", type="string", enum=["standard", "premium"], title="Customer tier",
            description="Premium orders ship express.",
        ),
        "items": Param(
            [{"sku": "SKU-RED-MUG", "quantity": 2, "unit_price": 1250}],
            type="array", items=ITEM_SCHEMA, minItems=1, title="Items",
            description="Order lines; unit_price in minor units (cents).",
        ),
        "shipping_address": Param(
            {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London",
             "postal_code": "SW1Y 4JH", "country": "GB", "region": "eu-west"},
            type="object", title="Shipping address", **{k: v for k, v in ADDRESS_SCHEMA.items() if k != "type"},
        ),
        "total_amount": Param(
            2500, type="integer", minimum=1, title="Total amount",
            description="In minor units; must equal the sum of quantity x unit_price.",
        ),
        "currency": Param("USD", type="string", pattern="^[A-Z]{3}$", title="Currency"),
        "payment_method": Param(
            "pm_card_ok", type="string", title="Payment method",
            examples=["pm_card_ok", "pm_card_declined", "pm_card_fraud", "pm_card_insufficient_funds",
                      "pm_card_expired"],
            description="Test values of the reference payment service: see the README.",
        ),
    },
) as dag:
    validate_order = ValidateOrderOperator(task_id="validate_order")

    process_payment = ProcessPaymentOperator(
        task_id="process_payment",
        order_id=order("order_id"),
        customer_id=order("customer_id"),
        amount=order("total_amount"),
        currency=order("currency"),
        payment_method=order("payment_method"),
    )
    reserve_inventory = ReserveInventoryOperator(
        task_id="reserve_inventory",
        order_id=order("order_id"),
        items=order("items"),
        region="{{ ti.xcom_pull(task_ids='validate_order')['shipping_address']['region'] }}",
    )
    schedule_shipment = ScheduleShipmentOperator(
        task_id="schedule_shipment",
        order_id=order("order_id"),
        reservation_id=result("reserve_inventory", "reservation_id"),
        address=order("shipping_address"),
        service_level=order("service_level"),
    )
    send_confirmation = SendOrderConfirmationOperator(
        task_id="send_confirmation",
        order_id=order("order_id"),
        customer_email=order("customer_email"),
        items=order("items"),
        total_amount=order("total_amount"),
        currency=order("currency"),
        shipment=result("schedule_shipment"),
    )
    complete_order = CompleteOrderOperator(
        task_id="complete_order",
        order_id=order("order_id"),
        payment=result("process_payment"),
        reservation=result("reserve_inventory"),
        shipment=result("schedule_shipment"),
        confirmation=result("send_confirmation"),
    )

    validate_order >> process_payment >> reserve_inventory >> schedule_shipment >> send_confirmation
    send_confirmation >> complete_order
