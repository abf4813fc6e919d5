"""The order's status rule: pure functions of the run's state and its task states."""

from __future__ import annotations

import pytest

from airflow_order_provider.api.status import (
    STATUSES,
    current_step,
    order_status,
)
from airflow_order_provider.order_saga import ORDER_SAGA


def test_every_step_of_the_table_has_its_status_and_the_statuses_are_unique():
    assert len(STATUSES) == len(set(STATUSES))
    assert [ORDER_SAGA.step(s).status for s in ORDER_SAGA.step_ids] == list(STATUSES[1:7])


@pytest.mark.parametrize(
    ("run_state", "states", "status", "step"),
    [
        ("queued", {}, "pending", None),
        ("running", {"validate_order": "running"}, "pending", "validate_order"),
        ("running", {"validate_order": "success", "process_payment": "up_for_retry"},
         "processing_payment", "process_payment"),
        ("running", {"process_payment": "success", "check_order_value": "success",
                     "approve_order": "awaiting_input"}, "awaiting_approval", "approve_order"),
        ("running", {"process_payment": "success", "approve_order": "skipped", "reserve_inventory": "queued"},
         "reserving_inventory", "reserve_inventory"),
        ("running", {"schedule_shipment": "success", "wait_for_dispatch": "deferred"},
         "awaiting_dispatch", "wait_for_dispatch"),
        ("running", {"wait_for_dispatch": "success", "send_confirmation": "running"},
         "sending_confirmation", "send_confirmation"),
        ("running", {"reserve_inventory": "failed", "plan_compensation": "success", "refund_payment": "running"},
         "compensating", "refund_payment"),
        ("running", {"reserve_inventory": "failed", "plan_compensation": "success", "cancel_order": None},
         "compensating", "plan_compensation"),
        ("success", {"complete_order": "success"}, "completed", "complete_order"),
        ("failed", {"process_payment": "failed", "cancel_order": "success"}, "cancelled", "cancel_order"),
        ("failed", {"process_payment": "failed", "refund_payment": "failed", "cancel_order": "upstream_failed"},
         "failed", "process_payment"),
    ],
)
def test_status_and_current_step(run_state, states, status, step):
    assert order_status(run_state, states) == status
    assert current_step(run_state, states) == step


def test_an_order_rolled_forward_is_completed_though_its_run_failed():
    from airflow_order_provider.api.status import order_status

    states = {"schedule_shipment": "failed", "plan_compensation": "success", "cancel_shipment": "success",
              "refund_payment": "skipped", "release_inventory": "skipped", "cancel_order": "skipped",
              "roll_forward_order": "success", "complete_order": "upstream_failed"}
    assert order_status("failed", states) == "completed"
    assert order_status("failed", {**states, "roll_forward_order": "skipped", "cancel_order": "success"}) == "cancelled"


def test_the_compensation_story_says_done_trying_with_the_next_try_and_needs_a_person():
    from airflow_order_provider.api.status import compensation_story

    wait = {"since": "2026-12-04T10:00:00+00:00", "calls": 3, "last_error": "ServiceUnavailableError: down",
            "next_try_at": "2026-12-04T10:05:00+00:00", "gives_up_at": "2026-12-05T10:00:00+00:00"}
    story = compensation_story(
        {"plan_compensation": "success", "cancel_shipment": "skipped", "refund_payment": "success",
         "release_inventory": "deferred", "cancel_order": None},
        {"release_inventory": {"state": "waiting", **wait}},
    )
    assert story["rolled_forward"] is False
    assert story["compensations"]["refund_payment"] == {"state": "done"}
    assert story["compensations"]["cancel_shipment"] == {"state": "not_needed"}
    assert story["compensations"]["release_inventory"] == {
        "state": "trying", "next_try_at": wait["next_try_at"], "since": wait["since"], "calls": 3,
        "last_error": wait["last_error"], "gives_up_at": wait["gives_up_at"]}
    stuck = compensation_story({"cancel_shipment": "failed", "refund_payment": "upstream_failed"}, {})
    assert stuck["compensations"]["cancel_shipment"] == {"state": "needs_person"}
    assert stuck["compensations"]["refund_payment"] == {"state": "waiting", "for": ["cancel_shipment"]}
