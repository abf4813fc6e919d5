"""What every order step and compensation operator shares: its policy, its hook, its key."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_order_provider.policies import ServicePolicy

if TYPE_CHECKING:
    from airflow_order_provider.hooks.base import OrderServiceHook


def idempotency_key(order_id: str, action: str) -> str:
    """
    The key under which a service remembers one action of one order.

    It depends only on the order and the action (never on the run or the try), so a retry, a
    cleared task and a second run of the same order all repeat the same request, which the
    service answers from its memory instead of charging, reserving, shipping or emailing again.
    """
    return f"{order_id}:{action}"


class OrderServiceOperator(BaseOperator):
    """
    Base for an operator that makes one business call to one order service.

    The retry policy, backoff and step timeout come from the service's row in
    :mod:`airflow_order_provider.policies`; any of them given explicitly (or through
    ``default_args``) wins.

    :param order_id: the order this call belongs to; with ``action`` it makes the idempotency
        key. (templated)
    :param conn_id: connection to the service; defaults to the hook's default connection.
    """

    #: Row of the policy table this operator follows.
    policy: ClassVar[ServicePolicy]
    #: What this operator does, as part of the idempotency key: ``payment.charge``...
    action: ClassVar[str]

    template_fields: Sequence[str] = ("order_id",)
    ui_color = "#e8f4fd"

    def __init__(self, *, order_id: str, conn_id: str | None = None, **kwargs: Any) -> None:
        # default_args reach this __init__ unapplied: an explicit argument or a default_args entry
        # both win over the policy table.
        given = {**(kwargs.get("default_args") or {}), **kwargs}
        for name, value in self.policy.operator_defaults().items():
            if name not in given:
                kwargs[name] = value
        super().__init__(**kwargs)
        self.order_id = order_id
        self.conn_id = conn_id

    def _hook_class(self) -> type[OrderServiceHook]:
        raise NotImplementedError

    @cached_property
    def hook(self) -> OrderServiceHook:
        """The service's hook, created on first use (at run time, never at parse time)."""
        return self._hook_class()(conn_id=self.conn_id)

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.order_id, self.action)
