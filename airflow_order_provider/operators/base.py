"""
The base of every task of the order saga (:class:`OrderSagaTask`: the validated order, the results
of earlier steps, the order's clocks) and of every operator that calls an order service
(:class:`OrderServiceOperator`: its policy, its hook, its idempotency key).

A forward step is :class:`~airflow_order_provider.operators.step.OrderStepOperator`, an undo
:class:`~airflow_order_provider.operators.compensation.OrderCompensationOperator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_order_provider import clock
from airflow_order_provider.policies import ServicePolicy, policy_for, with_policy_defaults
from airflow_order_provider.saga.steps import SagaAware
from airflow_order_provider.version_compat import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_order_provider.hooks.base import OrderServiceHook
    from airflow_order_provider.models import Order
    from airflow_order_provider.saga.steps import Saga

__all__ = ["OrderSagaTask", "OrderServiceOperator", "hook_for", "idempotency_key"]

def idempotency_key(order_id: str, action: str) -> str:
    """
    The key under which a service remembers one action of one order.

    It depends only on the order and the action (never on the run or the try), so a retry, a
    cleared task and a second run of the same order all repeat the same request, which the
    service answers from its memory instead of charging, reserving, shipping or emailing again.
    """
    return f"{order_id}:{action}"


def hook_for(service: str, conn_id: str | None = None) -> OrderServiceHook:
    from airflow_order_provider.hooks import hook_class_for

    return hook_class_for(service)(conn_id=conn_id)


class OrderSagaTask(SagaAware):
    """
    What a task of the order saga learns at run time: the validated order, typed, from the run's
    conf, and the results of earlier steps it needs (``inputs``), read once each.

    A task built by :func:`~airflow_order_provider.saga.build_saga` gets ``saga=``; one used on
    its own takes its business arguments instead.
    """

    saga: Saga | None
    inputs: dict[str, tuple[str, str | None]]
    order_id: str | None

    def saga_init(self, saga: Saga | None, inputs: dict[str, tuple[str, str | None]] | None) -> None:
        self.saga = saga
        self.inputs = dict(inputs or {})

    def result_of(self, context: Context, task_id: str, key: str = "return_value") -> Any:
        """An earlier task's XCom, read once per execution of this task."""
        # Created at run time, on the copy Airflow executes (a shallow copy of the parsed task):
        # a cache made in __init__ would be shared by every execution in one process (dag.test()).
        if "_results" not in self.__dict__:
            self._results: dict[tuple[str, str], Any] = {}
        if (task_id, key) not in self._results:
            self._results[task_id, key] = context["ti"].xcom_pull(task_ids=task_id, key=key)
        return self._results[task_id, key]

    def saga_input(self, context: Context) -> Order | None:
        """
        The validated order, typed: the run's conf as the saga's start task validated it
        (:func:`~airflow_order_provider.order_conf.order_of`, no call to the API server), or, when
        the start task was given its order instead of reading the conf, what it pushed.
        """
        from airflow_order_provider.order_conf import order_of, trusted_order

        assert self.saga is not None
        start = self.saga.start
        if start.kwargs.get("order") is None:
            order = order_of(context.get("dag_run"))
            if order is not None:
                return order
        return trusted_order(self.result_of(context, start.task_id))

    def take_order(self, order: Order) -> None:
        """Fill the business arguments that were not given from the validated order."""
        if self.order_id is None:
            self.order_id = order.order_id

    def prepare(self, context: Context) -> None:
        """Read the order and the inputs from earlier steps (saga-built operators only)."""
        if self.saga is not None and context.get("ti") is not None:
            order = self.saga_input(context)
            if order is None:
                raise AirflowFailException(f"{self.task_id}: the order was never validated")
            self.take_order(order)
        for name, (task_id, field) in self.inputs.items():
            if getattr(self, name, None) in (None, ""):
                value = self.result_of(context, task_id) or {}
                setattr(self, name, value.get(field) if field else value)

    def order_placed_at(self, context: Context) -> datetime | None:
        """When the order was placed (:func:`airflow_order_provider.clock.placed_at`)."""
        return clock.placed_at(context.get("dag_run"))

    def ship_deadline_near(self, context: Context, at: datetime | None = None) -> bool:
        """
        Whether less than ``expedite_within`` was left before the order's ship deadline at ``at``
        (default now), counted from when the order was placed, as the business deadline alert and
        the priority strategy count it (:func:`airflow_order_provider.clock.is_expedited`).
        """
        near = clock.is_expedited(self.order_placed_at(context), at)
        if near:
            self.log.warning("Order %s must ship within %s: expediting", self.order_id,
                             clock.ship_deadline_left(self.order_placed_at(context), at))
        return near


    def ready_at(self, context: Context) -> datetime | None:
        """
        When this step became ready: when the latest earlier step completed. A step decides its
        request from this instant, so every try (and a clear) sends the same request.
        """
        if self.saga is None:
            return None
        for step in reversed(self.saga.steps_before(self.task_id)):
            result = self.result_of(context, step.task_id)
            if isinstance(result, dict) and result.get("completed_at"):
                return datetime.fromisoformat(result["completed_at"])
        return None



class OrderServiceOperator(OrderSagaTask, BaseOperator):
    """
    Base for an operator that makes business calls to one order service.

    The retry policy, backoff, step timeout, queue and pool come from the service's row of the
    policy table (:mod:`airflow_order_provider.policies`, with the deployment's overrides; a
    compensation takes the service's compensation row); any of them given explicitly or through
    ``default_args`` wins.

    Built by :func:`~airflow_order_provider.saga.build_saga` (``saga=`` given), the operator reads
    the validated order from the run's conf (typed, :mod:`airflow_order_provider.order_conf`) and the
    results of earlier steps it needs
    (``inputs``); its business arguments may then be left out. Used on its own, it takes them as
    arguments (templated).

    :param order_id: the order this call belongs to; with ``action`` it makes the idempotency
        key. (templated)
    :param conn_id: connection to the service; defaults to the hook's default connection.
    :param saga: the saga's table, given by the builder.
    :param inputs: ``{argument: (step task id, field)}``: arguments taken from earlier steps'
        results at run time (one XCom read per step).
    """

    #: Service whose policy and hook this operator uses: ``payment``, ``inventory``...
    service: ClassVar[str]
    #: What this operator does, as part of the idempotency key: ``payment.charge``...
    action: ClassVar[str]
    #: Whether it undoes a step (its policy is the service's compensation row).
    is_compensation: ClassVar[bool] = False

    template_fields: Sequence[str] = ("order_id",)
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        order_id: str | None = None,
        conn_id: str | None = None,
        saga: Saga | None = None,
        inputs: dict[str, tuple[str, str | None]] | None = None,
        **kwargs: Any,
    ) -> None:
        policy = policy_for(self.service, compensation=self.is_compensation)
        super().__init__(**with_policy_defaults(kwargs, policy.operator_defaults()))
        self.policy: ServicePolicy = policy
        self.order_id = order_id
        self.conn_id = conn_id
        self.saga_init(saga, inputs)

    @cached_property
    def hook(self) -> OrderServiceHook:
        """The service's hook, created on first use (at run time, never at parse time)."""
        return hook_for(self.service, self.conn_id)

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(str(self.order_id), self.action)

    def is_last_try(self, ti: Any) -> bool:
        max_tries = getattr(ti, "max_tries", None)
        if max_tries is None:
            max_tries = self.retries
        return ti.try_number > max_tries
