"""
The order priority strategy: premium and expedited orders get a higher ``priority_weight``.

Checked on the scheduler's own path: the DAG serialized and deserialized as the scheduler reads it,
and its task instances built by ``TaskInstance.insert_mapping``, the function through which
``DagRun.verify_integrity`` calls the strategy for a new run (with a transient task instance).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_order_provider.priority import (
    EXPEDITED_BONUS,
    PREMIUM_BONUS,
    WEIGHT_RULE,
    OrderPriorityStrategy,
    order_weight,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def test_weight_rule_is_the_strategy_import_path():
    assert WEIGHT_RULE == "airflow_order_provider.priority.OrderPriorityStrategy"


def test_the_plugin_registers_the_strategy():
    from airflow import plugins_manager
    from airflow.task.priority_strategy import validate_and_load_priority_weight_strategy

    if hasattr(plugins_manager, "get_priority_weight_strategy_plugins"):  # 3.2+
        assert plugins_manager.get_priority_weight_strategy_plugins()[WEIGHT_RULE] is OrderPriorityStrategy
    else:  # 3.1
        plugins_manager.initialize_priority_weight_strategy_plugins()
        assert plugins_manager.priority_weight_strategy_classes[WEIGHT_RULE] is OrderPriorityStrategy
    assert isinstance(validate_and_load_priority_weight_strategy(WEIGHT_RULE), OrderPriorityStrategy)


def _order(conf):
    from airflow_order_provider.order_conf import trusted_order

    return trusted_order(conf)


@pytest.mark.parametrize(
    ("conf", "weight"),
    [
        ({"customer_tier": "standard"}, 1),
        ({}, 1),  # the order's default tier
        (None, 1),
        ({"customer_tier": "premium"}, 1 + PREMIUM_BONUS),
        ({"customer_tier": "gold"}, 1),  # no order: a standard weight
    ],
)
def test_tier(conf, weight):
    from harness.orders import EXAMPLE_ORDER

    order = _order(None if conf is None else {**EXAMPLE_ORDER, **conf})
    assert order_weight(1, order, placed_at=NOW, now=NOW) == weight


def test_expedited_when_less_than_the_expedite_window_is_left_before_the_ship_deadline():
    from harness.orders import EXAMPLE_ORDER

    premium = _order({**EXAMPLE_ORDER, "customer_tier": "premium"})
    # time_scale 0.01 in the tests: ship deadline 864 s, expedite within 36 s.
    fresh = order_weight(1, None, placed_at=NOW - timedelta(seconds=800), now=NOW)
    late = order_weight(1, None, placed_at=NOW - timedelta(seconds=840), now=NOW)
    late_premium = order_weight(5, premium, placed_at=NOW - timedelta(seconds=840), now=NOW)
    assert (fresh, late, late_premium) == (1, 1 + EXPEDITED_BONUS, 5 + PREMIUM_BONUS + EXPEDITED_BONUS)


def test_no_run_found_gives_the_task_weight():
    class Task:
        priority_weight = 7

    class TI:
        task = Task()
        dag_id = "d"
        run_id = "r"

    assert OrderPriorityStrategy().get_weight(TI()) == 7


def test_weights_of_a_new_run_are_set_per_order():
    """
    The DAG serialized and read back as the scheduler does, its task instances built by the run's
    own task creator (``DagRun._get_task_creator``, which calls ``insert_mapping``: where the
    strategy finds the run differs by release, see ``version_compat.run_being_created``).
    """
    from collections import defaultdict

    from airflow.models import DagRun
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from airflow_order_provider.version_compat import AIRFLOW_V_3_2_PLUS

    if AIRFLOW_V_3_2_PLUS:
        from airflow.serialization.serialized_objects import DagSerialization
    else:
        from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization

    with DAG(
        "priority_strategy_probe", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
        default_args={"weight_rule": WEIGHT_RULE},
    ) as dag:
        EmptyOperator(task_id="first") >> EmptyOperator(task_id="second", priority_weight=3)
    data = DagSerialization.to_dict(dag)
    assert {t["__var"]["weight_rule"] for t in data["dag"]["tasks"]} == {WEIGHT_RULE}
    scheduler_dag = DagSerialization.from_dict(data)

    from harness.orders import EXAMPLE_ORDER

    def weights(conf, placed_at):
        conf = {**EXAMPLE_ORDER, **conf}
        run = DagRun(dag_id=dag.dag_id, run_id=f"r-{id(conf)}", conf=conf, run_after=placed_at)
        create = run._get_task_creator(defaultdict(int), lambda ti: None, hook_is_noop=True, dag_version_id=None)
        return {task.task_id: next(iter(create(task, [-1])))["priority_weight"] for task in scheduler_dag.tasks}

    now = datetime.now(timezone.utc)
    assert weights({"customer_tier": "standard"}, now) == {"first": 1, "second": 3}
    assert weights({"customer_tier": "premium"}, now) == {"first": 11, "second": 13}
    # Placed 830 s ago: 34 s left of the 864 s ship deadline, less than the 36 s expedite window.
    assert weights({"customer_tier": "premium"}, now - timedelta(seconds=830)) == {"first": 31, "second": 33}
