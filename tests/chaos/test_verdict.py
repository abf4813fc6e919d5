"""The chaos suite's verdict rules, on made-up evidence: each broken promise is caught."""

from __future__ import annotations

import copy

from harness.orders import EXAMPLE_ORDER, OPS_EMAIL
from tests.chaos.verdict import Evidence, judge

ORDER = {**copy.deepcopy(EXAMPLE_ORDER), "order_id": "chaos-1"}


def entry(service, operation, status="succeeded", key=None, **details):
    return {"service": service, "operation": operation, "status": status,
            "idempotency_key": key or f"chaos-1:{service}.{operation}", "details": details}


def completed(**changes):
    evidence = Evidence(
        order=ORDER,
        status="completed",
        ledger=[entry("payment", "charge"), entry("inventory", "reserve"), entry("shipping", "schedule"),
                entry("notification", "email", to="ada@example.com")],
        charges=[{"payment_id": "pay-1", "status": "succeeded", "amount": 2500, "refunded_amount": 0}],
        reservations=[{"reservation_id": "res-1", "status": "committed"}],
        shipments=[{"shipment_id": "shp-1", "status": "dispatched", "address": ORDER["shipping_address"],
                    "dispatch_at": "2026-01-01T00:00:10+00:00"}],
        outbox=[{"to": "ada@example.com"}],
    )
    for name, value in changes.items():
        setattr(evidence, name, value)
    return evidence


def undone(**changes):
    evidence = completed(
        status="cancelled",
        ledger=[entry("payment", "charge"), entry("payment", "refund")],
        charges=[{"payment_id": "pay-1", "status": "refunded", "amount": 2500, "refunded_amount": 2500}],
        reservations=[{"reservation_id": "res-1", "status": "released"}],
        shipments=[{"shipment_id": "shp-1", "status": "cancelled"}],
        outbox=[],
    )
    for name, value in changes.items():
        setattr(evidence, name, value)
    return evidence


def test_a_clean_completed_order_and_a_clean_undone_one_pass():
    assert judge(completed()).ok and judge(completed()).outcome == "completed"
    assert judge(undone()).ok and judge(undone()).outcome == "cancelled"
    assert judge(undone(status="failed", charges=[], reservations=[], shipments=[])).outcome == "failed"


def test_a_second_charge_is_a_violation_whatever_the_outcome():
    twice = [*completed().ledger, entry("payment", "charge", key="chaos-1:other")]
    verdict = judge(completed(ledger=twice))
    assert not verdict.ok and "charged 2 times" in verdict.violations[0]
    alert = entry("notification", "email", to=OPS_EMAIL, subject="MANUAL INTERVENTION NEEDED: order chaos-1: x")
    assert not judge(undone(ledger=[*twice, alert])).ok  # an alert does not excuse doing it twice


def test_something_live_after_an_undo_needs_an_alert_that_names_the_order():
    live = [{"payment_id": "pay-1", "status": "partially_refunded", "amount": 2500, "refunded_amount": 1000}]
    verdict = judge(undone(charges=live))
    assert verdict.outcome == "VIOLATION" and "refunded 1000 of 2500" in verdict.violations[0]
    other = entry("notification", "email", to=OPS_EMAIL, subject="MANUAL INTERVENTION NEEDED: order chaos-12: x")
    assert not judge(undone(charges=live, ledger=[*undone().ledger, other])).ok
    named = entry("notification", "email", to=OPS_EMAIL, subject="MANUAL INTERVENTION NEEDED: order chaos-1: x")
    # A stock hold left with a live alert is a person's task; a charge left with nothing shipping is
    # the customer's money held, which no alert excuses.
    held = [{"reservation_id": "res-1", "status": "held"}]
    verdict = judge(undone(reservations=held, ledger=[*undone().ledger, named]))
    assert verdict.ok and verdict.outcome == "manual"
    assert not judge(undone(charges=live, ledger=[*undone().ledger, named])).ok


def test_a_completed_order_must_hold_exactly_one_of_each_and_ship_where_it_was_told():
    assert not judge(completed(reservations=[{"reservation_id": "res-1", "status": "held"}])).ok
    assert not judge(completed(shipments=[])).ok
    assert not judge(completed(outbox=[{"to": "ada@example.com"}, {"to": "ada@example.com"}])).ok
    moved = {**ORDER["shipping_address"], "line1": "1 New Street"}
    verdict = judge(completed(accepted_address=moved, sent_address=moved, signal_answers={"address": 200}))
    assert not verdict.ok and "accepted address change" in verdict.violations[0]
    assert not judge(completed(refusals=("payment_method pm_card_declined",))).ok


def test_a_cancel_accepted_well_before_the_pickup_must_win():
    early = judge(completed(cancel_accepted_at="2026-01-01T00:00:01+00:00", signal_answers={"cancel": 202}))
    assert not early.ok and "cancel was accepted" in early.violations[0]
    late = completed(cancel_accepted_at="2026-01-01T00:00:09+00:00", signal_answers={"cancel": 202})
    assert judge(late).ok


def test_answers_of_the_order_api_must_match_what_it_recorded():
    assert not judge(undone(signal_answers={"cancel": 202})).ok
    assert not judge(undone(signal_answers={"address": 409}, accepted_address=ORDER["shipping_address"])).ok


def test_an_order_still_running_is_a_violation():
    assert not judge(completed(status="compensating")).ok


def test_an_address_change_accepted_after_the_shipping_step_started_is_a_violation():
    moved = {**ORDER["shipping_address"], "line1": "1 New Street"}
    shipped = [{**completed().shipments[0], "address": moved}]
    on_time = completed(accepted_address=moved, sent_address=moved, signal_answers={"address": 200}, shipments=shipped,
                        address_changed_at="2026-01-01T00:00:01+00:00", shipping_started_at="2026-01-01T00:00:02+00:00")
    assert judge(on_time).ok
    on_time.address_changed_at = "2026-01-01T00:00:02.050+00:00"  # commit-order noise
    assert judge(on_time).ok
    on_time.address_changed_at = "2026-01-01T00:00:03.5+00:00"
    assert "after schedule_shipment started" in judge(on_time).violations[0]


# -- money and goods never both gone, or both kept, alert or not -----------------------------------


def ops_email(subject):
    return entry("notification", "email", to=OPS_EMAIL, subject=subject)


MANUAL_RELEASE = "MANUAL INTERVENTION NEEDED: order chaos-1: compensation release_inventory failed"
MANUAL_REFUND = "MANUAL INTERVENTION NEEDED: order chaos-1: compensation refund_payment failed"


def test_a_live_charge_with_nothing_shipping_is_a_violation_even_with_an_alert():
    held = undone(charges=[{"payment_id": "pay-1", "status": "succeeded", "amount": 2500, "refunded_amount": 0}],
                  ledger=[entry("payment", "charge"), ops_email(MANUAL_REFUND)])
    verdict = judge(held)
    assert not verdict.ok and any("live charge and nothing shipping" in v for v in verdict.violations), verdict


def test_goods_shipping_with_the_charge_refunded_is_a_violation_even_with_an_alert():
    given_away = completed(charges=[{"payment_id": "pay-1", "status": "refunded", "amount": 2500,
                                     "refunded_amount": 2500}],
                           ledger=[*completed().ledger, ops_email(MANUAL_RELEASE)])
    verdict = judge(given_away)
    assert not verdict.ok and any("charge refunded" in v for v in verdict.violations), verdict


def test_manual_needs_a_live_alert_not_one_resolved_since():
    stuck = undone(reservations=[{"reservation_id": "res-1", "status": "held"}],
                   ledger=[*undone().ledger, ops_email(MANUAL_RELEASE)])
    assert judge(stuck).ok and judge(stuck).outcome == "manual"
    resolved = undone(reservations=[{"reservation_id": "res-1", "status": "held"}],
                      ledger=[*undone().ledger, ops_email(MANUAL_RELEASE),
                              ops_email("RESOLVED: order chaos-1: compensation release_inventory succeeded")])
    verdict = judge(resolved)
    assert not verdict.ok and verdict.outcome == "VIOLATION", verdict


def test_an_order_rolled_forward_is_judged_as_completed():
    assert judge(completed()).ok  # a dispatched shipment, the charge kept: what rolling forward leaves
