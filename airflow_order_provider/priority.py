"""
Tiered execution: premium and expedited orders go first when workers or pool slots are scarce.

Airflow's ``priority_weight`` is a static number per task, the same for every run; what decides
an order's urgency is in the run (the order's ``customer_tier``, how close its ship deadline is).
The order is read as every other reader reads it (:func:`airflow_order_provider.order_conf.order_of`:
typed, parsed once per run and process, so the weights of a new run's tasks cost one parse).
A custom :class:`~airflow.task.priority_strategy.PriorityWeightStrategy` is Airflow's hook for a
weight computed per task *instance*: the scheduler calls :meth:`OrderPriorityStrategy.get_weight`
when it creates a run's task instances (and again when a task is cleared), stores the result in
the task instance's ``priority_weight``, and hands queued tasks to the executor highest weight
first, within each pool.

Use it on every task of the order DAG (``default_args``)::

    weight_rule="airflow_order_provider.priority.OrderPriorityStrategy"

It must be registered through a plugin (the provider's plugin does it,
:mod:`airflow_order_provider.plugins`), or the DAG does not serialize.

Weights, added to the task's own ``priority_weight`` (1 unless the DAG says otherwise):

========================== =======
order                      bonus
========================== =======
standard                   0
premium (``customer_tier``) ``PREMIUM_BONUS`` (10)
expedited                  ``EXPEDITED_BONUS`` (20)
premium and expedited      30
========================== =======

"Expedited" means what it means to the steps (:func:`airflow_order_provider.clock.is_expedited`):
less than ``expedite_within`` (1 hour, scaled by ``[order_provider] time_scale``) is left before
the order's ship deadline, counted from the time it was placed (``run_after``). An order that sat
in the queue, or a step cleared late in the order's life, therefore moves ahead of fresh orders.

Where the run comes from: Airflow builds a new run's task instances as transient objects
(``TaskInstance.insert_mapping``) and calls the strategy with one that has no ``dag_run``; the
run being created is in its callers' frames (3.2+: the ``dag_run`` argument of ``insert_mapping``
and ``refresh_from_task``; 3.1: ``self`` of ``insert_mapping``'s caller), which
:func:`airflow_order_provider.version_compat.run_being_created` looks up, without touching the
database: the strategy runs inside the scheduler's (or the API server's) transaction, which must
not be committed from here. A persistent task instance (a clear) has its ``dag_run``
relationship. Without a run, it falls back to the task's own weight.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.task.priority_strategy import PriorityWeightStrategy

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance

    from airflow_order_provider.models import Order

from airflow_order_provider import clock
from airflow_order_provider.order_conf import order_of
from airflow_order_provider.version_compat import run_being_created

PREMIUM_BONUS = 10
EXPEDITED_BONUS = 20


def _matches(candidate: Any, ti: TaskInstance) -> bool:
    return (
        candidate is not None
        and getattr(candidate, "run_id", None) == ti.run_id
        and getattr(candidate, "dag_id", None) == ti.dag_id
        and hasattr(candidate, "conf")
    )


def _run_of(ti: TaskInstance) -> Any | None:
    """The task instance's DAG run, without a query: its relationship, else its caller's ``dag_run``."""
    from sqlalchemy import inspect

    state = inspect(ti, raiseerr=False)
    if state is not None and state.persistent:
        dag_run = ti.dag_run
        if _matches(dag_run, ti):
            return dag_run
    # get_weight's caller and up: where the run lives differs by release (version_compat).
    return run_being_created(lambda candidate: _matches(candidate, ti), depth=2)


def is_premium(order: Order | None) -> bool:
    return order is not None and order.customer_tier == "premium"


def order_weight(base: int, order: Order | None, placed_at: datetime | None, now: datetime | None = None) -> int:
    """The weight of a task whose own ``priority_weight`` is ``base``, in ``order`` placed then."""
    weight = base
    if is_premium(order):
        weight += PREMIUM_BONUS
    if clock.is_expedited(placed_at, now):
        weight += EXPEDITED_BONUS
    return weight


class OrderPriorityStrategy(PriorityWeightStrategy):
    """The task's ``priority_weight``, raised for premium customers and for orders near their ship deadline."""

    def get_weight(self, ti: TaskInstance) -> int:
        base = ti.task.priority_weight if ti.task is not None else 1
        dag_run = _run_of(ti)
        if dag_run is None:
            return base
        return order_weight(base, order_of(dag_run), clock.placed_at(dag_run))


#: What the DAG passes as ``weight_rule`` (the strategy's import path, as Airflow serializes it).
WEIGHT_RULE = f"{OrderPriorityStrategy.__module__}.{OrderPriorityStrategy.__qualname__}"
