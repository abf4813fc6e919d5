"""
The order of a run, reached one way everywhere.

An order enters through ``POST /orders`` or, for a run started in Airflow's UI or REST API, the
``validate_order`` task: both validate it in full (:class:`~airflow_order_provider.models.Order`,
every bad field named) before any service is called. Everything after reads it with
:func:`order_of`: the run's conf parsed into the typed order, trusted (the checks of values the
entry made, such as the currency list, the email and the total, are not repeated), cached per
process and run. The steps, the priority strategy (in the scheduler), the alerts, the ship
deadline's callback and the order API's reads all go through it; none reads the conf itself.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_order_provider.models import Order

#: The field ``validate_order`` adds to the order it pushes (the order's shipping speed).
SERVICE_LEVEL = "service_level"
#: How many runs' orders a process keeps (the scheduler weighs every task of a new run).
_CACHE_SIZE = 256

_cache: OrderedDict[tuple[Any, Any], tuple[Any, Order]] = OrderedDict()
_cache_lock = threading.Lock()


def _field(run: Any, *names: str) -> Any:
    """A field of a run: an ORM or task SDK DagRun, or the dict a deadline callback gets."""
    for name in names:
        value = run.get(name) if isinstance(run, Mapping) else getattr(run, name, None)
        if value is not None:
            return value
    return None


def conf_of(run: Any) -> dict[str, Any]:
    """The run's conf as it was submitted ({} when there is none): the order before any parsing."""
    conf = _field(run, "conf") if run is not None else None
    return conf if isinstance(conf, dict) else {}


def trusted_order(data: Any) -> Order | None:
    """
    ``data`` (a run's conf, or the order ``validate_order`` pushed) as the typed order, without
    the checks of values its entry made; None when it is no order at all (a missing or mistyped
    field). Strings are normalized and defaults filled exactly as the full validation does.
    """
    from pydantic import ValidationError

    from airflow_order_provider.models import TRUSTED, Order

    if not isinstance(data, dict) or not data:
        return None
    if SERVICE_LEVEL in data:
        data = {key: value for key, value in data.items() if key != SERVICE_LEVEL}
    try:
        return Order.model_validate(data, context=TRUSTED)
    except ValidationError:
        return None


def order_of(run: Any) -> Order | None:
    """
    The typed order of a run (see :func:`trusted_order`), None for a run whose conf is no order.
    Parsed once per process and run; the instance is shared (the models are frozen).
    """
    if run is None:
        return None
    conf = conf_of(run)
    key = (_field(run, "dag_id"), _field(run, "run_id", "dag_run_id"))
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == conf:
            _cache.move_to_end(key)
            return cached[1]
    order = trusted_order(conf)
    if order is not None:
        with _cache_lock:
            _cache[key] = (copy.deepcopy(conf), order)
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return order


def order_id_of(run: Any) -> str | None:
    """
    The id of the order a run carries: its typed order's; for a conf that is no order (it failed
    validation), the ``order_id`` it names, if any.
    """
    order = order_of(run)
    if order is not None:
        return order.order_id
    value = conf_of(run).get("order_id")
    return value if isinstance(value, str) and value else None


def order_payload(order: Order) -> dict[str, Any]:
    """The order as ``validate_order`` pushes it: its JSON, with its service level."""
    payload = order.model_dump(mode="json")
    payload[SERVICE_LEVEL] = order.service_level
    return payload
