"""
The order saga's one home: its steps in order, each with its service, its compensation, the status
an order shows while it is there, the results it keeps, and whether its wait counts against the
workflow clock.

Read it as the order's workflow::

    validate_order
    process_payment        -> refund_payment       (payment)
    [check_order_value]    approve_order           (above the approval threshold; a person's wait)
    reserve_inventory      -> release_inventory    (inventory; needs a live charge)
    schedule_shipment      -> cancel_shipment      (shipping; needs a live charge and stock;
                                                    past the carrier's pickup: roll forward)
    wait_for_dispatch                              (the carrier's wait)
    send_confirmation                              (best effort: the goods have left)
    complete_order | plan_compensation -> ... -> cancel_order | roll_forward_order

The compensations wait for one another only where the business says so (``undo_after``): the
refund and the stock release wait for the shipment's cancel, and for nothing else.

The DAG (``dags/order_processing.py``) is :func:`~airflow_order_provider.saga.build_saga` of
:data:`ORDER_SAGA`; the Orders API's status rules (:mod:`airflow_order_provider.api.status`), the
deadline alert and the alerts read the task ids from here. No other module of the provider spells
out an order task id.
"""

from __future__ import annotations

from airflow_order_provider.operators.approval import ApproveOrderOperator
from airflow_order_provider.operators.inventory import ReleaseInventoryOperator, ReserveInventoryOperator
from airflow_order_provider.operators.notification import SendOrderConfirmationOperator
from airflow_order_provider.operators.order import (
    CheckOrderValueOperator,
    OrderPlanCompensationOperator,
    ValidateOrderOperator,
)
from airflow_order_provider.operators.outcome import (
    CancelOrderOperator,
    CompleteOrderOperator,
    RollForwardOrderOperator,
)
from airflow_order_provider.operators.payment import ProcessPaymentOperator, RefundPaymentOperator
from airflow_order_provider.operators.shipping import CancelShipmentOperator, ScheduleShipmentOperator
from airflow_order_provider.saga import Saga, SagaStep, SagaTask
from airflow_order_provider.sensors.shipping import WaitForDispatchSensor

#: The DAG that runs one order per run (dags/order_processing.py); the order API reads its runs.
ORDER_DAG_ID = "order_processing"

ORDER_SAGA = Saga(
    name="order",
    id_field="order_id",
    start=SagaTask("validate_order", ValidateOrderOperator),
    steps=(
        SagaStep(
            "process_payment", ProcessPaymentOperator, status="processing_payment",
            service="payment", compensation="refund_payment", compensate=RefundPaymentOperator,
            result_fields=("payment_id", "transaction_ref"),
            # Money goes back only once the goods can no longer leave: after the shipment's cancel is
            # done or proven unnecessary. Not after the stock release: a hold that cannot be released
            # expires by itself (the services' holds last 24 h), a charge does not.
            undo_after=("schedule_shipment",),
        ),
        SagaStep(
            "approve_order", ApproveOrderOperator, status="awaiting_approval", waits=True,
            gate=CheckOrderValueOperator, gate_task_id="check_order_value",
        ),
        SagaStep(
            "reserve_inventory", ReserveInventoryOperator, status="reserving_inventory",
            service="inventory", compensation="release_inventory", compensate=ReleaseInventoryOperator,
            result_fields=("reservation_id", "warehouse_id"),
            requires=("process_payment",),
            # A reservation committed to a shipment can be released once that shipment is cancelled.
            undo_after=("schedule_shipment",),
        ),
        SagaStep(
            "schedule_shipment", ScheduleShipmentOperator, status="scheduling_shipment",
            service="shipping", compensation="cancel_shipment", compensate=CancelShipmentOperator,
            result_fields=("shipment_id", "tracking_number", "carrier", "estimated_delivery"),
            requires=("process_payment", "reserve_inventory"),
            kwargs={"inputs": {"reservation_id": ("reserve_inventory", "reservation_id")}},
            # Once the carrier has picked the parcel up it cannot be called back: the order is then
            # finished (roll_forward_order) instead of undone.
            rolls_forward=True,
        ),
        SagaStep(
            "wait_for_dispatch", WaitForDispatchSensor, status="awaiting_dispatch", waits=True,
            result_fields=("dispatched_at",),
            kwargs={"inputs": {"shipment_id": ("schedule_shipment", "shipment_id")}},
        ),
        SagaStep(
            "send_confirmation", SendOrderConfirmationOperator, status="sending_confirmation",
            service="notification", rolls_back=False, result_fields=("message_id",),
            requires=("schedule_shipment",),
            kwargs={"inputs": {"shipment": ("schedule_shipment", None)}},
        ),
    ),
    complete=SagaTask(
        "complete_order", CompleteOrderOperator,
        {"inputs": {
            "payment": ("process_payment", None),
            "reservation": ("reserve_inventory", None),
            "shipment": ("schedule_shipment", None),
            "confirmation": ("send_confirmation", None),
        }},
    ),
    plan=SagaTask("plan_compensation", OrderPlanCompensationOperator),
    cancelled=SagaTask("cancel_order", CancelOrderOperator),
    # Rolling forward past the shipment's point of no return: adopt the dispatched shipment, send the
    # confirmation, complete the order with its charge and stock, and tell operations what happened.
    roll_forward=SagaTask(
        "roll_forward_order", RollForwardOrderOperator,
        {"inputs": {"payment": ("process_payment", None), "reservation": ("reserve_inventory", None)}},
    ),
)
