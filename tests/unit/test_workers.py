"""The Celery workers' autoscale bounds: the policy table's (the seed's) worker pools, scaled to a machine."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_order_provider.policies import PAYMENT, policy_for, worker_autoscale
from airflow_order_provider.workers import autoscale_settings, main


def test_the_table_holds_the_seeds_worker_pools():
    bounds = {s: (policy_for(s).min_workers, policy_for(s).max_workers)
              for s in ("payment", "inventory", "shipping", "notification")}
    assert bounds == {"payment": (5, 50), "inventory": (10, 100), "shipping": (3, 20), "notification": (2, 20)}


def test_unscaled_bounds_are_the_tables():
    assert worker_autoscale("payment") == (50, 5)
    assert worker_autoscale("inventory", 1.0) == (100, 10)


def test_one_setting_scales_every_pool_rounding_up_to_at_least_one():
    assert autoscale_settings(0.2) == {
        "ORDER_PAYMENT_AUTOSCALE": "10,1",
        "ORDER_INVENTORY_AUTOSCALE": "20,2",
        "ORDER_SHIPPING_AUTOSCALE": "4,1",
        "ORDER_NOTIFICATION_AUTOSCALE": "4,1",
    }
    assert worker_autoscale("notification", 0.01) == (1, 1)


@pytest.mark.parametrize("scale", [0, -1, float("nan")])
def test_a_scale_that_is_not_positive_is_refused(scale):
    with pytest.raises(ValueError, match="positive"):
        worker_autoscale("payment", scale)


def test_a_minimum_above_the_maximum_is_refused():
    with pytest.raises(ValueError, match="min_workers <= max_workers"):
        dataclasses.replace(PAYMENT, min_workers=60)


def test_the_bounds_follow_policy_overrides(monkeypatch):
    monkeypatch.setenv("AIRFLOW__ORDER_PROVIDER__POLICY_OVERRIDES", '{"payment": {"min_workers": 2, "max_workers": 8}}')
    assert worker_autoscale("payment") == (8, 2)


def test_the_command_prints_env_lines(capsys):
    main(["--scale", "0.5"])
    assert capsys.readouterr().out.splitlines()[0] == "ORDER_PAYMENT_AUTOSCALE=25,3"


def test_the_command_refuses_a_bad_scale(capsys):
    with pytest.raises(SystemExit):
        main(["--scale", "zero"])
    assert "not a number" in capsys.readouterr().err
