"""
order_processing: one run per order, orchestrating payment, inventory, shipping and confirmation.

Trigger it from the UI's form (pre-filled with an example order) or through the REST API with the
order as the run's conf. The steps, their services and compensations are the order saga's table
(``airflow_order_provider.order_saga``); their retry policies, timeouts, queues and pools come from
``airflow_order_provider.policies``. See the provider's README for the order's fields and the test
values.

Orders above the approval threshold wait for a person in Required Actions after the payment.
Once shipped, the order waits for the carrier's pickup in the triggerer, holding no worker slot.
When a step fails for good, ``plan_compensation`` undoes what is in effect, latest step first
(cancel shipment, release inventory, refund payment), and ``cancel_order`` records the cancelled
order; the run ends failed.
"""

from __future__ import annotations

# Airflow's own modules that the provider's operators build on are named here, so that the DAG
# processor imports them once, before it forks the process that parses this file ([dag_processor]
# parsing_pre_import_modules pre-imports this file's own "airflow." imports), not at every parse.
import airflow.providers.standard.operators.hitl  # noqa: F401  (the approval's Required Action)
import pendulum
from airflow.sdk import DAG

from airflow_order_provider.notifications.alerts import OrderAlertNotifier
from airflow_order_provider.notifications.deadline import ship_deadline_alert
from airflow_order_provider.order_form import order_params
from airflow_order_provider.order_saga import ORDER_DAG_ID, ORDER_SAGA
from airflow_order_provider.policies import order_times
from airflow_order_provider.priority import WEIGHT_RULE
from airflow_order_provider.saga import build_saga

#: Notifiers called when a task fails for good. Add yours (Slack, SMTP...) to this list.
ALERT_NOTIFIERS = [OrderAlertNotifier()]

with DAG(
    dag_id=ORDER_DAG_ID,
    description="Payment, inventory, shipping and confirmation for one order, with compensation",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["orders"],
    doc_md=__doc__,
    # premium and expedited orders go first wherever tasks wait for a slot (tiered execution)
    default_args={"owner": "orders", "on_failure_callback": ALERT_NOTIFIERS, "weight_rule": WEIGHT_RULE},
    # A backstop that should never fire: every wait at its longest. When it does, Airflow skips the
    # remaining tasks and this callback alerts operations to settle the order.
    dagrun_timeout=order_times().run_timeout(),
    on_failure_callback=ALERT_NOTIFIERS,
    deadline=ship_deadline_alert(ORDER_SAGA),
) as dag:
    build_saga(ORDER_SAGA)

# The trigger form, pre-filled with an example order: the order model's JSON schema, one field each.
# Given to the DAG once its tasks exist, so that Airflow keeps it on the DAG alone: params given to
# DAG(...) are deep-copied into each of the 15 tasks and validated again for each of them when the
# file is serialized (about 45 ms of every parse of this file). Every task reads the DAG's params at
# run time either way.
dag.params = order_params()
