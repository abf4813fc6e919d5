"""The chaos plan: reproducible from its seed, valid orders only, under the approval threshold."""

from __future__ import annotations

import dataclasses

from airflow_order_provider.models import parse_order
from tests.chaos.plan import ChaosSettings, FaultSchedule, plan_kills, plan_orders

APPROVAL_THRESHOLD = 100_000  # [order_provider] approval_threshold's default; the e2e deployment keeps it


def settings(**changes):
    return dataclasses.replace(ChaosSettings(), **changes)


def test_the_same_seed_gives_the_same_plan_and_another_seed_another():
    assert plan_orders(settings(seed=7), "t") == plan_orders(settings(seed=7), "t")
    assert plan_kills(settings(seed=7)) == plan_kills(settings(seed=7))
    assert [p.order["items"] for p in plan_orders(settings(seed=7), "t")] != [
        p.order["items"] for p in plan_orders(settings(seed=8), "t")]


def test_every_planned_order_is_valid_and_needs_no_approval():
    plans = plan_orders(settings(orders=500, seed=3))
    assert len({p.order_id for p in plans}) == 500
    for plan in plans:
        order = parse_order(plan.order)
        assert order.total_amount <= APPROVAL_THRESHOLD, plan.order
    # The mix holds every kind of trouble.
    assert sum(1 for p in plans if p.refusals) > 25
    assert sum(1 for p in plans if p.cancel_after is not None) > 40
    assert sum(1 for p in plans if p.new_address and "UNDELIVERABLE" in p.new_address["line1"]) > 2


def test_faults_alternate_phases_within_the_rate_range():
    schedule = FaultSchedule(seed=1, low=0.2, high=0.3)
    drawn = [schedule.next("payment") for _ in range(4)]
    assert [f.phase for f in drawn[:2]] == [f.phase for f in drawn[2:]] and drawn[0].phase != drawn[1].phase
    assert all(0.2 <= f.error_rate <= 0.3 for f in drawn)
    assert len({f.seed for f in drawn}) == 4


def test_kills_are_spread_over_the_submissions_and_the_first_slows_payment():
    kills = plan_kills(settings(orders=30, kills=2))
    assert [k.after_submitted for k in kills] == [10, 20]
    assert kills[0].service == "payment" and [k.phase for k in kills] == ["after", "before"]


def test_the_stretches_are_an_outage_then_the_carriers_lost_answers_longer_than_the_pickup_delay():
    from tests.chaos.plan import OUTAGE_SERVICES, ChaosSettings, plan_stretches
    from tests.conftest import SESSION_DISPATCH_DELAY

    settings = ChaosSettings(orders=15, seed=7)
    outage, carrier = plan_stretches(settings)
    assert (outage.phase, outage.service in OUTAGE_SERVICES, outage.after_submitted) == ("before", True, 5)
    assert (carrier.service, carrier.phase, carrier.after_submitted) == ("shipping", "after", 10)
    assert carrier.seconds > SESSION_DISPATCH_DELAY  # parcels are picked up while their answers are lost
    assert plan_stretches(settings) == [outage, carrier]  # from the seed alone
    assert plan_stretches(ChaosSettings(orders=15, seed=7, outage_seconds=0, carrier_lost_seconds=0)) == []
