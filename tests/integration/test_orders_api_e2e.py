"""
The order API (``/orders``, served by Airflow's own API server through the provider's plugin) on a
real Airflow: start an order, start it again, follow it to completed through a retried step,
compare what it says with Airflow's own REST API and the services' ledger, list and page orders,
refuse bad input naming the field, and refuse callers the way Airflow's REST API does.

Authorization is proved, not assumed: the API server serves a plugin's app without any check of
its own (the Orders page, which holds no data, answers without a token), so every data endpoint,
enumerated from the app's OpenAPI document, is called without a token, with a garbage token,
an expired one, a forged one and the UI's session cookie, and as a read-only user; each answer is
compared with what Airflow's REST API answers for the same credentials.
"""

from __future__ import annotations

import json
import time
import warnings
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import requests

from airflow_order_provider import signals
from harness.orders import an_order, ledger

pytestmark = pytest.mark.integration

DAG_ID = "order_processing"
RUN_TIMEOUT = 180.0
#: The statuses of an order that goes straight through, in the order it takes them.
FORWARD_STATUSES = [
    "pending", "processing_payment", "awaiting_approval", "reserving_inventory", "scheduling_shipment",
    "awaiting_dispatch", "sending_confirmation", "completed",
]
HAPPY_LEDGER = [
    ("payment", "charge", "succeeded"),
    ("inventory", "reserve", "succeeded"),
    ("shipping", "schedule", "succeeded"),
    ("notification", "email", "succeeded"),
]
NEW_ADDRESS = {"name": "Ada Lovelace", "line1": "1 New Street", "city": "Leeds", "postal_code": "LS1 1AA",
               "country": "GB", "region": "eu-west"}
# What Airflow's REST API checks on its own, for comparison.
AIRFLOW_RUNS = f"/api/v2/dags/{DAG_ID}/dagRuns"
NOT_RUN = frozenset({None, "scheduled", "queued", "up_for_retry", "upstream_failed", "removed"})


class OrderApi:
    """``requests`` against the API server with one kind of credential (or none)."""

    def __init__(self, base_url: str, token: str | None = None, cookie: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.cookies = {"_token": cookie} if cookie else {}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, self.base_url + path, headers=self.headers, cookies=self.cookies, timeout=30, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=json, **kwargs)

    def order(self, order_id: str) -> dict[str, Any]:
        response = self.get(f"/orders/{quote(order_id, safe='')}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_status(self, order_id: str, statuses: set[str], timeout: float = RUN_TIMEOUT) -> list[str]:
        """Poll the order until its status is one of ``statuses``; return every status seen, in order."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            current = self.order(order_id)["status"]
            if not seen or seen[-1] != current:
                seen.append(current)
            if current in statuses:
                return seen
            assert time.monotonic() < deadline, f"order {order_id} still {current} after {timeout:.0f}s: {seen}"
            time.sleep(0.3)


def fields(response: requests.Response) -> set[str]:
    """The fields a 422 names (``loc`` without ``body``/``query``)."""
    assert response.status_code == 422, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    return {".".join(str(p) for p in error["loc"][1:]) for error in detail}


def parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def forged(token: str, secret: str, *, expired: bool = False) -> str:
    """A copy of a real token: signed with ``secret``, and ``expired`` an hour ago if asked."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    if expired:
        now = int(time.time())
        claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    extra = {k: v for k, v in header.items() if k not in ("alg", "typ")}
    with warnings.catch_warnings():  # the deployment's secret is shorter than PyJWT recommends
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret, algorithm=header["alg"], headers=extra or None)


# -- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(client, airflow_env) -> OrderApi:
    """The order API as the admin (bearer token from ``POST /auth/token``)."""
    return OrderApi(airflow_env.base_url, token=client.login())


@pytest.fixture(scope="module")
def orders(api, client, order_services, airflow_env):
    """
    Two orders started through ``POST /orders`` and run to completion: ``retried``, whose payment
    fails twice with a 503 before it goes through (faults at rate 0.5, seed 3: each failed try
    also asks what is in effect), and ``plain``,
    started once the first was charged. Each is started twice (the second answers 409).
    """
    retried, plain = an_order(), an_order()
    answers: dict[str, list[requests.Response]] = {}
    order_services.set_faults("payment", error_rate=0.5, seed=3)
    try:
        answers[retried["order_id"]] = [api.post("/orders", json=retried), api.post("/orders", json=retried)]
        client.wait_for_task_state(DAG_ID, retried["order_id"], "process_payment", {"success", "failed"})
    finally:
        order_services.clear_faults()
    answers[plain["order_id"]] = [api.post("/orders", json=plain)]
    statuses = api.wait_for_status(retried["order_id"], {"completed", "cancelled", "failed"})
    api.wait_for_status(plain["order_id"], {"completed", "cancelled", "failed"})
    answers[plain["order_id"]].append(api.post("/orders", json=plain))
    for order in (retried, plain):
        assert client.dag_run(DAG_ID, order["order_id"])["state"] == "success", airflow_env.describe_run(
            DAG_ID, order["order_id"])
    return {"retried": retried, "plain": plain, "answers": answers, "statuses": statuses}


# -- starting an order ---------------------------------------------------------------------------------


def test_start_answers_201_with_the_order_as_run_and_409_the_second_time(orders, client, api, order_services):
    order = orders["retried"]
    order_id = order["order_id"]
    first, second = orders["answers"][order_id]
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["order_id"] == order_id and body["run_id"] == order_id
    assert body["status"] == "pending"
    assert body["links"]["run"] == f"/dags/{DAG_ID}/runs/{order_id}"

    assert second.status_code == 409, second.text
    again = second.json()
    assert again["run_id"] == order_id and again["links"]["run"] == f"/dags/{DAG_ID}/runs/{order_id}"
    assert order_id in again["detail"]

    # Airflow holds exactly one run for it: the order as its conf, no logical date, manual.
    run = client.dag_run(DAG_ID, order_id)
    assert run["conf"] == order and run["logical_date"] is None and run["run_type"] == "manual"
    runs = client.get(AIRFLOW_RUNS, params={"limit": 100, "run_id_pattern": order_id})["dag_runs"]
    assert [r["dag_run_id"] for r in runs] == [order_id]
    assert run["triggering_user_name"] == "admin"
    # Recorded in Airflow's audit log, once.
    started = client.event_logs(event="order_api.start", run_id=order_id)
    assert [(e["owner"], e["dag_id"]) for e in started] == [("admin", DAG_ID)], started
    # ...and the services one charge, although the order was started twice and charged on its 3rd try.
    assert ledger(order_services, order_id) == HAPPY_LEDGER

    # Started again once completed: still 409, the same run, nothing charged again.
    late = orders["answers"][orders["plain"]["order_id"]][1]
    assert late.status_code == 409 and late.json()["status"] == "completed", late.text
    assert ledger(order_services, orders["plain"]["order_id"]) == HAPPY_LEDGER


def test_status_moves_forward_to_completed_and_results_are_the_ledgers_ids(orders, api, order_services):
    order_id = orders["retried"]["order_id"]
    seen = orders["statuses"]
    assert seen[-1] == "completed", seen
    positions = [FORWARD_STATUSES.index(s) for s in seen]
    assert positions == sorted(positions), f"status went backwards: {seen}"
    assert "processing_payment" in seen, seen  # three tries of the payment take seconds

    detail = api.order(order_id)
    assert detail["status"] == "completed" and detail["current_step"] == "complete_order"
    assert detail["order"] == orders["retried"]
    assert detail["cancel_request"] is None and detail["shipping_address_change"] is None
    assert parse(detail["created_at"]) <= parse(detail["updated_at"])

    results = detail["results"]
    entries = {e["operation"]: e for e in order_services.audit(order_id) if e["status"] == "succeeded"}
    for operation, keys in {
        "charge": ["payment_id"],
        "reserve": ["reservation_id"],
        "schedule": ["shipment_id", "tracking_number"],
        "email": ["confirmation_message_id"],
    }.items():
        recorded = json.dumps(entries[operation], default=str)
        for key in keys:
            assert results[key] and results[key] in recorded, (key, results[key], entries[operation])
    assert results["completion"]["status"] == "completed"
    assert results["completion"]["payment_id"] == results["payment_id"]
    assert results["cancellation"] is None


def test_history_is_airflows_tries(orders, api, client):
    order_id = orders["retried"]["order_id"]
    history = api.order(order_id)["history"]

    expected = {}
    for ti in client.task_instances(DAG_ID, order_id):
        for attempt in client.task_tries(DAG_ID, order_id, ti["task_id"]):
            if attempt["try_number"] and attempt["state"] not in NOT_RUN:
                expected[(attempt["task_id"], attempt["try_number"])] = attempt
    got = {(e["step"], e["try_number"]): e for e in history}
    assert len(got) == len(history), f"a try is listed twice: {history}"
    assert sorted(got) == sorted(expected)
    for key, attempt in expected.items():
        entry = got[key]
        assert entry["state"] == attempt["state"], (key, entry, attempt)
        assert parse(entry["start"]) == parse(attempt["start_date"]), (key, entry, attempt)
        assert parse(entry["end"]) == parse(attempt["end_date"]), (key, entry, attempt)

    payment = [e for e in history if e["step"] == "process_payment"]
    assert [(e["try_number"], e["state"]) for e in payment] == [(1, "failed"), (2, "failed"), (3, "success")]
    starts = [parse(e["start"]) for e in history]
    assert starts == sorted(starts), "history is not oldest first"
    # Airflow cleared the failure XCom of tries 1 and 2 when try 3 started: no error is invented.
    assert all(e["error"] is None for e in payment)


# -- listing orders ---------------------------------------------------------------------------------------


def test_list_filters_by_status_and_since_newest_first_and_pages(orders, api):
    retried, plain = orders["retried"]["order_id"], orders["plain"]["order_id"]
    since = api.order(retried)["created_at"]

    listed = api.get("/orders", params={"status": "completed", "since": since}).json()
    assert [o["order_id"] for o in listed["orders"]] == [plain, retried] and listed["total_entries"] == 2
    first = listed["orders"][1]
    assert first["run_id"] == retried and first["status"] == "completed"
    assert first["current_step"] == "complete_order"
    assert (first["total_amount"], first["currency"], first["customer_id"]) == (2500, "USD", "cus-42")
    assert first["age_seconds"] > 0 and parse(first["created_at"]) == parse(since)

    pages = [
        api.get("/orders", params={"status": "completed", "since": since, "limit": 1, "offset": n}).json()
        for n in (0, 1, 2)
    ]
    assert [[o["order_id"] for o in p["orders"]] for p in pages] == [[plain], [retried], []]
    assert {p["total_entries"] for p in pages} == {2}

    later = (parse(api.order(plain)["created_at"]) + timedelta(milliseconds=1)).isoformat()
    assert api.get("/orders", params={"since": later}).json()["orders"] == []
    everything = [o["order_id"] for o in api.get("/orders", params={"limit": 500}).json()["orders"]]
    assert everything.index(plain) < everything.index(retried)
    for other in ("failed", "cancelled", "awaiting_dispatch", "pending"):
        ids = [o["order_id"] for o in api.get("/orders", params={"status": other, "limit": 500}).json()["orders"]]
        assert retried not in ids and plain not in ids, other

    assert fields(api.get("/orders", params={"limit": 501})) == {"limit"}
    assert fields(api.get("/orders", params={"status": "lost"})) == {"status"}
    assert fields(api.get("/orders", params={"since": "yesterday"})) == {"since"}
    assert fields(api.get("/orders", params={"offset": -1})) == {"offset"}


# -- bad input, unknown orders, too late ------------------------------------------------------------------


def test_a_bad_order_is_refused_naming_each_field_and_creates_nothing(api, client):
    order = an_order(currency="XXX", customer_email="not-an-address")
    order["items"][0]["quantity"] = 0
    del order["customer_id"]
    response = api.post("/orders", json=order)
    assert fields(response) == {"items.0.quantity", "currency", "customer_email", "customer_id"}
    messages = " ".join(e["msg"] for e in response.json()["detail"])
    assert "items.0.quantity:" in messages and "customer_id: is required" in messages

    total = an_order(total_amount=999)
    response = api.post("/orders", json=total)
    assert response.status_code == 422 and "total_amount" in response.text, response.text
    assert fields(api.post("/orders", json=[order])) == {""}  # not a JSON object

    for bad in (order, total):
        assert client.request("GET", f"{AIRFLOW_RUNS}/{bad['order_id']}").status_code == 404
        assert api.get(f"/orders/{bad['order_id']}").status_code == 404


def test_unknown_order_is_404_everywhere(api):
    assert api.get("/orders/ord-nobody").status_code == 404
    assert api.post("/orders/ord-nobody/cancel", json={"reason": "changed my mind"}).status_code == 404
    assert api.post("/orders/ord-nobody/shipping-address", json=NEW_ADDRESS).status_code == 404
    assert "ord-nobody" in api.get("/orders/ord-nobody").json()["detail"]


def test_a_completed_order_can_be_neither_cancelled_nor_readdressed(orders, api, client):
    order_id = orders["plain"]["order_id"]
    cancel = api.post(f"/orders/{order_id}/cancel", json={"reason": "too late"})
    assert cancel.status_code == 409 and cancel.json()["status"] == "completed", cancel.text
    address = api.post(f"/orders/{order_id}/shipping-address", json=NEW_ADDRESS)
    assert address.status_code == 409 and address.json()["status"] == "completed", address.text
    # Nothing was recorded.
    for key in (signals.cancel_key(order_id), signals.address_key(order_id)):
        assert client.request("GET", f"/api/v2/variables/{quote(key, safe='')}").status_code == 404
    detail = api.order(order_id)
    assert detail["cancel_request"] is None and detail["shipping_address_change"] is None

    # Bodies are checked first, naming the field.
    assert fields(api.post(f"/orders/{order_id}/cancel", json={"reason": ""})) == {"reason"}
    assert fields(api.post(f"/orders/{order_id}/cancel", json={"reason": "x" * 501})) == {"reason"}
    assert fields(api.post(f"/orders/{order_id}/cancel", json={})) == {"reason"}
    assert fields(api.post(f"/orders/{order_id}/shipping-address", json={**NEW_ADDRESS, "country": "gb"})) == {
        "country"}


# -- authentication and authorization -------------------------------------------------------------------------


def endpoints(base_url: str, order_id: str) -> list[tuple[str, str, Any]]:
    """Every endpoint of the order API from its OpenAPI document: ``(method, path, body)``."""
    spec = requests.get(f"{base_url}/orders/openapi.json", timeout=30).json()
    bodies = {
        ("post", "/"): an_order(),
        ("post", "/{order_id}/cancel"): {"reason": "auth test"},
        ("post", "/{order_id}/shipping-address"): NEW_ADDRESS,
    }
    found = []
    for path, operations in spec["paths"].items():
        for method in operations:
            concrete = "/orders" + path.replace("{order_id}", order_id).rstrip("/")
            found.append((method.upper(), concrete, bodies.get((method, path))))
    return found


def test_every_endpoint_demands_airflows_authentication(orders, client, airflow_env):
    base = airflow_env.base_url
    order_id = orders["plain"]["order_id"]
    calls = endpoints(base, order_id)
    assert {(m, p.replace(order_id, "{id}")) for m, p, _ in calls} == {
        ("POST", "/orders"), ("GET", "/orders"), ("GET", "/orders/health"), ("GET", "/orders/{id}"),
        ("POST", "/orders/{id}/cancel"), ("POST", "/orders/{id}/shipping-address"),
    }

    # The API server does not protect a plugin's app by itself: the page (no data) answers anyone.
    page = requests.get(f"{base}/orders/ui", timeout=30)
    assert page.status_code == 200 and "<title>Orders</title>" in page.text and order_id not in page.text

    real = client.login()
    credentials = {
        "no token": OrderApi(base),
        "garbage token": OrderApi(base, token="not-a-jwt"),
        "token signed with another key": OrderApi(base, token=forged(real, "another-secret")),
        "expired token": OrderApi(base, token=forged(real, airflow_env.deployment.jwt_secret, expired=True)),
        "garbage cookie": OrderApi(base, cookie="not-a-jwt"),
    }
    for name, caller in credentials.items():
        airflow_answer = caller.get(AIRFLOW_RUNS)
        assert airflow_answer.status_code in (401, 403), (name, airflow_answer.status_code)
        for method, path, body in calls:
            response = caller.request(method, path, json=body)
            assert response.status_code == airflow_answer.status_code, (name, method, path, response.text)
            assert response.json()["detail"] == airflow_answer.json()["detail"], (name, method, path)
    # Without a token: 401, as Airflow ("Not authenticated"); a bad or forged one: 403 "Invalid JWT token"
    # as Airflow 3.3 answers; an expired one: 401 "Token Expired".
    assert credentials["no token"].get("/orders").status_code == 401
    assert credentials["expired token"].get("/orders").json()["detail"] == "Token Expired"

    # Bad input without a token is refused as unauthenticated, not validated.
    assert credentials["no token"].post("/orders", json={"order_id": "?"}).status_code == 401
    # Nothing happened: the order started without a token does not exist, the cancel was not recorded.
    started = next(body for method, path, body in calls if (method, path) == ("POST", "/orders"))
    assert client.request("GET", f"{AIRFLOW_RUNS}/{started['order_id']}").status_code == 404
    assert client.request("GET", f"/api/v2/variables/{signals.cancel_key(order_id)}").status_code == 404

    # The UI's session cookie (what the Orders page sends) is accepted like the bearer token.
    with_cookie = OrderApi(base, cookie=real)
    assert with_cookie.get("/orders").status_code == 200
    assert with_cookie.get(f"/orders/{order_id}").json()["order_id"] == order_id


def test_a_viewer_reads_orders_but_may_not_start_cancel_or_readdress_them(orders, client, airflow_env):
    base = airflow_env.base_url
    viewer_token = airflow_env.deployment.client_for("viewer").login()
    viewer = OrderApi(base, token=viewer_token)
    order_id = orders["plain"]["order_id"]

    # Reading: allowed, as Airflow allows a viewer to list the DAG's runs.
    assert viewer.get(AIRFLOW_RUNS).status_code == 200
    assert viewer.get("/orders").status_code == 200
    assert viewer.get(f"/orders/{order_id}").json()["status"] == "completed"

    # Changing: forbidden, as Airflow forbids a viewer to trigger the DAG.
    order = an_order()
    airflow_answer = viewer.post(AIRFLOW_RUNS, json={"logical_date": None, "conf": order})
    assert airflow_answer.status_code == 403
    for path, body in (
        ("/orders", order),
        (f"/orders/{order_id}/cancel", {"reason": "viewer"}),
        (f"/orders/{order_id}/shipping-address", NEW_ADDRESS),
        ("/orders/ord-nobody/cancel", {"reason": "viewer"}),  # 403 before 404: nothing leaks
    ):
        response = viewer.post(path, json=body)
        assert response.status_code == 403, (path, response.text)
        assert response.json() == airflow_answer.json(), path
    assert client.request("GET", f"{AIRFLOW_RUNS}/{order['order_id']}").status_code == 404
