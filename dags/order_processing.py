"""
order_processing: one run per order, orchestrating payment, inventory, shipping and confirmation.

Trigger it from the UI's form (pre-filled with an example order) or through the REST API with the
order as the run's conf. The services, retry policies and timeouts come from the
``airflow-order-provider`` package; see its README for the order's fields and the test values.

Orders above the approval threshold wait for a person in Required Actions after the payment.
Once shipped, the order waits for the carrier's pickup in the triggerer, holding no worker slot.

When a step fails for good (payment, approval, inventory, shipping, pickup), ``plan_compensation``
undoes the steps that completed, latest first (cancel shipment, release inventory, refund
payment), and ``cancel_order`` records the cancelled order; the run ends failed. A confirmation
email that never goes out does not undo the order: ``complete_order`` still runs, and operations
are alerted. Every time limit comes from ``airflow_order_provider.policies``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, Param, TriggerRule

from airflow_order_provider.deadlines import OrderPlacedAt
from airflow_order_provider.models import ORDER_ID_PATTERN
from airflow_order_provider.notifications.alerts import OrderAlertNotifier
from airflow_order_provider.notifications.deadline import order_missed_ship_deadline
from airflow_order_provider.operators.approval import ApproveOrderOperator
from airflow_order_provider.operators.inventory import ReleaseInventoryOperator, ReserveInventoryOperator
from airflow_order_provider.operators.notification import SendOrderConfirmationOperator
from airflow_order_provider.operators.order import (
    CancelOrderOperator,
    CheckOrderValueOperator,
    CompleteOrderOperator,
    PlanCompensationOperator,
    ValidateOrderOperator,
)
from airflow_order_provider.operators.payment import ProcessPaymentOperator, RefundPaymentOperator
from airflow_order_provider.operators.shipping import CancelShipmentOperator, ScheduleShipmentOperator
from airflow_order_provider.policies import order_times
from airflow_order_provider.sensors.shipping import WaitForDispatchSensor

#: Notifiers called when a task fails for good. Add yours (Slack, SMTP...) to this list.
ALERT_NOTIFIERS = [OrderAlertNotifier()]

_ORDER = "ti.xcom_pull(task_ids='validate_order')"


def order(field: str) -> str:
    """Template for a field of the validated order (the ``validate_order`` task's result)."""
    return "{{ " + f"{_ORDER}['{field}']" + " }}"


def result(task_id: str, field: str | None = None) -> str:
    """Template for a step's result, or one field of it; None when the step has no result."""
    pull = f"(ti.xcom_pull(task_ids='{task_id}') or {{}})"
    return "{{ " + (f"{pull}.get('{field}')" if field else pull) + " }}"


def exhausted_mode(service: str) -> str:
    """Template for the order's own ``on_retries_exhausted`` choice for a service, if any."""
    return "{{ " + f"{_ORDER}['on_retries_exhausted'].get('{service}')" + " }}"


#: The forward steps in order, each with its compensation (None: nothing to undo).
STEPS = {
    "process_payment": "refund_payment",
    "approve_order": None,
    "reserve_inventory": "release_inventory",
    "schedule_shipment": "cancel_shipment",
    "wait_for_dispatch": None,
}
TIMES = order_times()

#: The order id where the order may not have been validated (the rollback path).
ORDER_ID = "{{ " + f"({_ORDER} or {{}}).get('order_id')" + " }}"

ADDRESS_SCHEMA = {
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
    description="Payment, inventory, shipping and confirmation for one order, with compensation",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["orders"],
    doc_md=__doc__,
    default_args={
        "owner": "orders",
        "on_failure_callback": ALERT_NOTIFIERS,
        # every step checks the order's workflow clock; waits for a person or the carrier don't count
        "workflow_timeout": "{{ " + f"{_ORDER}['workflow_timeout_seconds']" + " }}",
        "workflow_clock_excludes": ["approve_order", "wait_for_dispatch"],
    },
    # A backstop that should never fire: every wait at its longest. When it does, Airflow skips the
    # remaining tasks and this callback alerts operations to settle the order.
    dagrun_timeout=TIMES.run_timeout(),
    on_failure_callback=ALERT_NOTIFIERS,
    deadline=DeadlineAlert(
        reference=OrderPlacedAt(),
        interval=TIMES.scaled("ship_deadline"),
        callback=AsyncCallback(order_missed_ship_deadline, kwargs={"forward_steps": list(STEPS)}),
    ),
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
            type="object", title="Shipping address", **ADDRESS_SCHEMA,
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
        "workflow_timeout_seconds": Param(
            None, type=["null", "integer"], minimum=1, title="Workflow timeout (optional)",
            description="Seconds this order's processing may take, if less than the deployment's.",
        ),
        "on_retries_exhausted": Param(
            {}, type="object", title="On retries exhausted (optional)",
            description='Per service, for this order: compensate, pause or fail. Example: {"shipping": "pause"}',
        ),
    },
) as dag:
    validate_order = ValidateOrderOperator(task_id="validate_order")

    # -- forward steps ---------------------------------------------------------------------------
    process_payment = ProcessPaymentOperator(
        task_id="process_payment",
        order_id=order("order_id"),
        customer_id=order("customer_id"),
        amount=order("total_amount"),
        currency=order("currency"),
        payment_method=order("payment_method"),
        on_retries_exhausted=exhausted_mode("payment"),
    )
    check_order_value = CheckOrderValueOperator(
        task_id="check_order_value",
        total_amount=order("total_amount"),
        approval_task_id="approve_order",
        next_task_id="reserve_inventory",
    )
    approve_order = ApproveOrderOperator(task_id="approve_order", order=result("validate_order"))
    reserve_inventory = ReserveInventoryOperator(
        task_id="reserve_inventory",
        order_id=order("order_id"),
        items=order("items"),
        region="{{ " + f"{_ORDER}['shipping_address']['region']" + " }}",
        on_retries_exhausted=exhausted_mode("inventory"),
        # after the approval when there is one; straight after the payment when it was skipped
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    )
    schedule_shipment = ScheduleShipmentOperator(
        task_id="schedule_shipment",
        order_id=order("order_id"),
        reservation_id=result("reserve_inventory", "reservation_id"),
        address=order("shipping_address"),
        service_level=order("service_level"),
        on_retries_exhausted=exhausted_mode("shipping"),
    )
    wait_for_dispatch = WaitForDispatchSensor(
        task_id="wait_for_dispatch",
        order_id=order("order_id"),
        shipment_id=result("schedule_shipment", "shipment_id"),
    )
    send_confirmation = SendOrderConfirmationOperator(
        task_id="send_confirmation",
        order_id=order("order_id"),
        customer_email=order("customer_email"),
        items=order("items"),
        total_amount=order("total_amount"),
        currency=order("currency"),
        shipment=result("schedule_shipment"),
        on_retries_exhausted=exhausted_mode("notification"),
    )
    complete_order = CompleteOrderOperator(
        task_id="complete_order",
        order_id=order("order_id"),
        payment=result("process_payment"),
        reservation=result("reserve_inventory"),
        shipment=result("schedule_shipment"),
        confirmation=result("send_confirmation"),
        # Runs once the carrier picked the order up, whether or not the confirmation went out; a
        # failed shipment leaves it upstream_failed, which fails the run.
        trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
    )

    # -- compensation, latest step first -----------------------------------------------------------
    plan_compensation = PlanCompensationOperator(
        task_id="plan_compensation",
        order_id=ORDER_ID,
        steps=STEPS,
        cancel_task_id="cancel_order",
        trigger_rule=TriggerRule.ONE_FAILED,
    )
    reason = "{{ (ti.xcom_pull(task_ids='plan_compensation', key='plan') or {}).get('reason') }}"
    cancel_shipment = CancelShipmentOperator(
        task_id="cancel_shipment",
        order_id=ORDER_ID,
        shipment_id=result("schedule_shipment", "shipment_id"),
        reason=reason,
    )
    release_inventory = ReleaseInventoryOperator(
        task_id="release_inventory",
        order_id=ORDER_ID,
        reservation_id=result("reserve_inventory", "reservation_id"),
        reason=reason,
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    )
    refund_payment = RefundPaymentOperator(
        task_id="refund_payment",
        order_id=ORDER_ID,
        payment_id=result("process_payment", "payment_id"),
        reason=reason,
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    )
    cancel_order = CancelOrderOperator(
        task_id="cancel_order",
        order_id=ORDER_ID,
        plan_task_id="plan_compensation",
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    )

    validate_order >> process_payment >> check_order_value >> [approve_order, reserve_inventory]
    approve_order >> reserve_inventory >> schedule_shipment >> wait_for_dispatch >> send_confirmation
    [wait_for_dispatch, send_confirmation] >> complete_order
    [process_payment, approve_order, reserve_inventory, schedule_shipment, wait_for_dispatch] >> plan_compensation
    # A compensation that fails for good stops the ones after it (upstream_failed) until it is fixed.
    plan_compensation >> cancel_shipment >> release_inventory >> refund_payment >> cancel_order
    plan_compensation >> [release_inventory, refund_payment, cancel_order]
