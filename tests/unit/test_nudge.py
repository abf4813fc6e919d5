"""The nudge's follow-ups: which state reports leave a decision due later, and that it is made."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from airflow_order_provider import nudge

TI_ID = "01a24841-92b9-7b7a-81dc-8cdb8be63be7"


def test_a_final_failure_is_followed_up_while_its_trigger_rules_settle():
    assert nudge.follow_ups({"state": "failed", "end_date": "2026-12-05T10:00:00Z"}) == list(nudge.AFTER_FAILURE)


def test_a_reschedule_is_followed_up_at_its_date():
    due = nudge.follow_ups({"state": "up_for_reschedule", "reschedule_date": "2026-12-05T10:00:30Z"})
    assert due == [datetime(2026, 12, 5, 10, 0, 30, tzinfo=timezone.utc)]


@pytest.mark.parametrize("state", ["success", "deferred", "skipped", "awaiting_input"])
def test_reports_that_the_next_examination_settles_need_no_follow_up(state):
    assert nudge.follow_ups({"state": state}) == []


def test_a_retry_chosen_by_the_retry_policy_falls_due_after_its_delay():
    end = datetime(2026, 12, 5, 10, 0, tzinfo=timezone.utc)
    assert nudge.next_retry_at(TI_ID, end, 7.5) == end + timedelta(seconds=7.5)


def test_follow_ups_nudge_in_due_order(monkeypatch):
    nudged: list[str] = []
    done = threading.Event()

    def record(ti_id: str) -> None:
        nudged.append(ti_id)
        if len(nudged) == 2:
            done.set()

    monkeypatch.setattr(nudge, "nudge_run_of", record)
    follow_ups = nudge._FollowUps()
    now = nudge.time.time()
    follow_ups.add(now + 0.3, "later")
    follow_ups.add(now, "now")
    assert done.wait(timeout=10)
    assert nudged == ["now", "later"]


def _patch(path: str, body: dict, status: int = 204) -> tuple[list[str], list[tuple[str, dict]]]:
    """Send one PATCH through the middleware in front of an app that reads the body and answers ``status``."""
    nudged: list[str] = []
    followed: list[tuple[str, dict]] = []

    async def app(scope, receive, send):
        message = await receive()
        assert json.loads(message["body"]) == body  # the app still gets the whole body
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = nudge.NudgeRunsMiddleware(app)
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "PATCH", "path": path}
    original = (nudge.nudge_run_of, nudge.schedule_follow_ups)
    nudge.nudge_run_of = nudged.append
    nudge.schedule_follow_ups = lambda ti_id, report: followed.append((ti_id, report))
    try:
        asyncio.run(middleware(scope, receive, send))
    finally:
        nudge.nudge_run_of, nudge.schedule_follow_ups = original
    assert sent[0]["status"] == status
    return nudged, followed


def test_a_retry_report_nudges_now_and_schedules_its_follow_up():
    report = {"state": "up_for_retry", "end_date": "2026-12-05T10:00:00Z"}
    nudged, followed = _patch(f"/execution/task-instances/{TI_ID}/state", report)
    assert nudged == [TI_ID]
    assert followed == [(TI_ID, report)]


def test_a_success_report_nudges_once():
    nudged, followed = _patch(f"/execution/task-instances/{TI_ID}/state", {"state": "success", "end_date": "x"})
    assert nudged == [TI_ID]
    assert followed == []


def test_a_refused_report_nudges_nothing():
    nudged, followed = _patch(f"/execution/task-instances/{TI_ID}/state", {"state": "failed"}, status=409)
    assert nudged == [] and followed == []
