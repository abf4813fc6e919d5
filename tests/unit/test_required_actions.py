"""
Required Actions answers kept for a retry (airflow_order_provider.required_actions): what a task
reads back, and which requests the API server's middleware records. The whole path, with Airflow's
scheduler failing a resumed approval, is tests/integration/test_approval_race_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from types import SimpleNamespace

import pytest

from airflow_order_provider import required_actions
from airflow_order_provider.required_actions import ANSWER_KEY, RecordRequiredActionAnswers, recorded_answer

TI_ID = "01a2427d-5395-74d0-bb55-e04f0818c1af"
RECORDED = {
    "ti_id": TI_ID,
    "try_number": 1,
    "chosen_options": ["Approve"],
    "params_input": {},
    "responded_at": "2026-12-04T19:17:29.788292+00:00",
    "responded_by": {"id": "admin", "name": "admin"},
}


class Store:
    def __init__(self, values: dict) -> None:
        self.values = values

    def get(self, key: str, default=None):
        return self.values.get(key, default)


def context(ti_id: str, values: dict | None, try_number: int = 1) -> dict:
    ctx = {"ti": SimpleNamespace(id=ti_id, try_number=try_number)}
    if values is not None:
        ctx["task_state_store"] = Store(values)
    return ctx


def test_the_answer_recorded_for_this_task_instance_is_the_resume_event():
    # Failed from outside while still queued: the same task instance, its next try.
    event = recorded_answer(context(TI_ID, {ANSWER_KEY: RECORDED}, try_number=2))
    assert event == {
        "chosen_options": ["Approve"],
        "params_input": {},
        "responded_at": datetime.fromisoformat(RECORDED["responded_at"]),
        "responded_by_user": {"id": "admin", "name": "admin"},
    }


OTHER_ID = "01a2427d-0000-7000-8000-000000000000"


def test_the_try_after_the_answered_one_acts_on_it_under_its_new_id():
    # Failed from outside while running, the answered try is recorded and the next gets a new id.
    event = recorded_answer(context(OTHER_ID, {ANSWER_KEY: RECORDED}, try_number=2))
    assert event is not None and event["chosen_options"] == ["Approve"]


def test_an_answer_to_an_older_try_is_not_acted_on():
    assert recorded_answer(context(OTHER_ID, {ANSWER_KEY: RECORDED}, try_number=3)) is None
    assert recorded_answer(context(OTHER_ID, {ANSWER_KEY: {**RECORDED, "try_number": None}}, try_number=2)) is None


def test_a_first_try_started_again_acts_on_the_answer_it_was_given():
    # Airflow 3.3.2 can run the answered first try's `execute` again, with the same id and try
    # number 1 (seen in CI: the try asked again, its new request cleared the Approve, and the
    # order was refunded at the approval timeout).
    event = recorded_answer(context(TI_ID, {ANSWER_KEY: RECORDED}, try_number=1))
    assert event is not None and event["chosen_options"] == ["Approve"]


def test_an_answer_recorded_for_a_later_try_than_the_task_reports_is_acted_on():
    # The try number a task is handed can lag the one the answer was recorded for; the answer
    # is still the newest, so it is acted on rather than asked again.
    later = {**RECORDED, "try_number": 2}
    event = recorded_answer(context(OTHER_ID, {ANSWER_KEY: later}, try_number=1))
    assert event is not None and event["chosen_options"] == ["Approve"]


def test_no_answer_or_no_state_store_reads_as_none():
    assert recorded_answer(context(TI_ID, {})) is None
    assert recorded_answer(context(TI_ID, None)) is None  # Airflow before 3.3: no task state store


def _app_answering(status: int, body: dict):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


def _call(method: str, path: str, status: int, body: dict, monkeypatch) -> tuple[list, list]:
    recorded: list = []
    sent: list = []
    monkeypatch.setattr(required_actions, "record_answer", lambda *args: recorded.append(args))

    async def run():
        app = _app_answering(status, body)

        async def send(message):
            sent.append(message)

        await RecordRequiredActionAnswers(app)({"type": "http", "method": method, "path": path}, None, send)

    asyncio.run(run())
    return recorded, sent


ANSWER = {"chosen_options": ["Approve"], "params_input": {}, "responded_at": RECORDED["responded_at"],
          "responded_by": {"id": "admin", "name": "admin"}}


def test_a_successful_answer_is_recorded_before_it_is_sent_on(monkeypatch):
    path = "/api/v2/dags/order_processing/dagRuns/ord%2F1/taskInstances/approve_order/-1/hitlDetails"
    recorded, sent = _call("PATCH", path, 200, ANSWER, monkeypatch)
    assert recorded == [("order_processing", "ord/1", "approve_order", -1, ANSWER)]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert json.loads(sent[1]["body"]) == ANSWER  # the client gets Airflow's answer unchanged


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("PATCH", "/api/v2/dags/d/dagRuns/r/taskInstances/t/-1/hitlDetails", 409),  # refused answer
        ("GET", "/api/v2/dags/d/dagRuns/r/taskInstances/t/-1/hitlDetails", 200),  # a read
        ("PATCH", "/api/v2/dags/d/dagRuns/r/taskInstances/t/-1", 200),  # another endpoint
    ],
)
def test_nothing_else_is_recorded(method, path, status, monkeypatch):
    recorded, sent = _call(method, path, status, ANSWER, monkeypatch)
    assert recorded == []
    assert sent[0]["status"] == status
