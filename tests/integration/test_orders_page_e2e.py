"""
The Orders page in Airflow's UI, in a real browser: headless Chromium (Debian's ``chromium``)
driven through the Chrome DevTools Protocol over a websocket, logged in to the real e2e Airflow with
the UI's own session cookie (``_token``, from ``POST /auth/token``).

The page is the provider plugin's ``external_views`` entry "Orders": the UI shows it in a frame at
``/plugin/orders``, and the page, served by the order API at ``/orders/ui``, calls the order API
with that cookie. The order on the page waits for a person at ``schedule_shipment`` (shipping
down, ``on_retries_exhausted: pause``), so it is still running when Cancel is clicked.

Screenshots are written to the e2e AIRFLOW_HOME (kept with ``ORDER_E2E_KEEP=1``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from websockets.sync.client import connect

from airflow_order_provider import signals
from airflow_order_provider.saga.failure import COMPENSATE
from harness.orders import an_order

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not HAVE_CHROMIUM,
        reason=f"{CHROMIUM} not found: the Orders page tests need Debian's chromium "
        "(apt-get install -y --no-install-recommends chromium)",
    ),
]

DAG_ID = "order_processing"
RUN_TIMEOUT = 180.0
FRAME = 'document.querySelector(\'iframe[title="Orders"]\')'
#: A person answers Required Actions in seconds (see test_failure_e2e.HUMAN_DELAY).
HUMAN_DELAY = 3.0


class Browser:
    """One headless Chromium page, driven over the Chrome DevTools Protocol (synchronously)."""

    def __init__(self, profile: Path, log_path: Path, width: int = 1600, height: int = 1000) -> None:
        self.profile = profile
        self.log = open(log_path, "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank",
            ],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._id = 0
        try:
            port = self._devtools_port()
            pages = []
            deadline = time.monotonic() + 30
            while not pages:
                pages = [t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
                         if t["type"] == "page"]
                if not pages and time.monotonic() > deadline:
                    raise RuntimeError("Chromium opened no page")
                time.sleep(0.1)
            self.ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=15)
            self.call("Page.enable")
            self.call("Network.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout: float = 30.0) -> int:
        """Chromium picks a free port (``--remote-debugging-port=0``) and writes it to the profile."""
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Chromium exited with {self.proc.returncode}")
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                return int(marker.read_text().splitlines()[0])
            time.sleep(0.1)
        raise RuntimeError("Chromium did not open its DevTools port")

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, what: str = "") -> Any:
        """Evaluate ``expression`` until it is truthy; return that value."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
                if value:
                    return value
            except RuntimeError as error:  # e.g. the frame is not there yet
                last_error = error
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or expression} ({last_error})")

    def set_cookie(self, name: str, value: str, url: str) -> None:
        self.call("Network.setCookie", name=name, value=value, url=url, httpOnly=True, sameSite="Lax")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def click(self, x: float, y: float) -> None:
        """A real left click at page coordinates (mouse moved, pressed, released)."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_text(self, text: str) -> None:
        self.call("Input.insertText", text=text)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


class OrdersPage:
    """The Orders page as shown in Airflow's UI: a frame titled "Orders" at ``/plugin/orders``."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser

    def in_frame(self, body: str) -> Any:
        """Run ``body`` (JavaScript, with ``doc`` the page's document) inside the Orders frame."""
        return self.browser.evaluate(
            f"(() => {{ const frame = {FRAME}; const doc = frame && frame.contentDocument;"
            f" if (!doc || !doc.getElementById('orders')) return null; {body} }})()"
        )

    def wait(self, body: str, timeout: float = 30.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.in_frame(body)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or body}")

    def click(self, selector: str) -> None:
        """A real click on an element of the frame, at its centre in the page's coordinates."""
        x, y = self.in_frame(
            f"const el = doc.querySelector({json.dumps(selector)}); el.scrollIntoView({{block: 'center'}});"
            " const f = frame.getBoundingClientRect(), r = el.getBoundingClientRect();"
            " return [f.left + r.left + r.width / 2, f.top + r.top + r.height / 2];"
        )
        self.browser.click(x, y)

    def row(self, order_id: str) -> dict[str, Any] | None:
        """The order's row in the list: its cells' texts and its run link."""
        return self.in_frame(
            f"const row = [...doc.querySelectorAll('#orders tbody tr')]"
            f".find(r => r.dataset.orderId === {json.dumps(order_id)});"
            " if (!row) return null;"
            " return {cells: [...row.cells].map(c => c.textContent.trim()),"
            " run: row.querySelector('a.run-link').href};"
        )

    def message(self) -> str:
        return self.in_frame("const m = doc.getElementById('message'); return m.hidden ? '' : m.textContent;") or ""


# -- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path, airflow_env):
    instance = Browser(Path(tempfile.mkdtemp(dir=tmp_path, prefix="chromium-")), tmp_path / "chromium.log")
    try:
        yield instance
    finally:
        instance.close()


def log_in(browser: Browser, airflow_env, username: str) -> str:
    """Log the browser in as Airflow's UI would: the JWT from ``POST /auth/token`` as the ``_token`` cookie."""
    token = airflow_env.deployment.client_for(username).login() if username != "admin" else (
        airflow_env.client.login())
    browser.set_cookie("_token", token, airflow_env.base_url + "/")
    return token


@pytest.fixture(scope="module")
def paused_order(client, airflow_env, order_services):
    """
    An order started through ``POST /orders`` that waits for a person at ``schedule_shipment``
    (shipping answers 503 to everything; the order pauses when retries run out, 864 s here).
    Afterwards the decision "compensate" ends it, if it has not ended by itself.
    """
    token = client.login()
    order = an_order(on_retries_exhausted={"shipping": "pause"})
    order_id = order["order_id"]
    order_services.set_faults("shipping", error_rate=1.0, seed=1)
    try:
        started = requests.post(f"{airflow_env.base_url}/orders", json=order, timeout=30,
                                headers={"Authorization": f"Bearer {token}"})
        assert started.status_code == 201, started.text
        client.wait_for_task_state(DAG_ID, order_id, "schedule_shipment", {"awaiting_input"}, timeout=RUN_TIMEOUT)
        yield order
    finally:
        time.sleep(HUMAN_DELAY)
        order_services.clear_faults()  # the planner asks the shipping service before it undoes anything
        if client.task_states(DAG_ID, order_id).get("schedule_shipment") == "awaiting_input":
            client.request(
                "PATCH",
                f"/api/v2/dags/{DAG_ID}/dagRuns/{order_id}/taskInstances/schedule_shipment/-1/hitlDetails",
                json={"chosen_options": [COMPENSATE], "params_input": {}},
            )
        with contextlib.suppress(Exception):
            client.wait_for_run(DAG_ID, order_id, timeout=RUN_TIMEOUT)


def order_api(airflow_env, client, order_id: str) -> dict[str, Any]:
    response = requests.get(f"{airflow_env.base_url}/orders/{quote(order_id, safe='')}", timeout=30,
                            headers={"Authorization": f"Bearer {client.login()}"})
    assert response.status_code == 200, response.text
    return response.json()


# -- tests -----------------------------------------------------------------------------------------------------


def test_without_a_session_the_page_shows_no_orders(browser, airflow_env, paused_order):
    browser.navigate(f"{airflow_env.base_url}/orders/ui")
    browser.wait_for("document.getElementById('message') && !document.getElementById('message').hidden",
                     what="the page's message")
    assert "not logged in" in browser.evaluate("document.getElementById('message').textContent")
    assert browser.evaluate("document.querySelectorAll('#orders tbody tr').length") == 0
    assert paused_order["order_id"] not in browser.evaluate("document.documentElement.outerHTML")


def test_a_viewer_sees_the_order_but_its_cancel_is_refused(browser, airflow_env, client, paused_order):
    order_id = paused_order["order_id"]
    log_in(browser, airflow_env, "viewer")
    browser.navigate(f"{airflow_env.base_url}/plugin/orders")
    page = OrdersPage(browser)
    page.wait(f"return [...doc.querySelectorAll('#orders tbody tr')].some(r => r.dataset.orderId === "
              f"{json.dumps(order_id)})", what=f"order {order_id} in the list")
    page.click(f'#orders tbody tr[data-order-id="{order_id}"] a.order-link')
    page.wait(f"return doc.getElementById('detail').dataset.orderId === {json.dumps(order_id)}",
              what="the order's details")
    page.click("#cancel-reason")
    browser.type_text("viewer tries")
    page.click("#cancel-button")
    outcome = page.wait("return doc.getElementById('cancel-result').dataset.outcome", what="the cancel's answer")
    assert outcome == "error-403"
    assert "may not" in page.in_frame("return doc.getElementById('cancel-result').textContent")
    assert order_api(airflow_env, client, order_id)["cancel_request"] is None


def test_the_orders_page_lists_the_order_and_its_cancel_button_cancels_it(
    browser, airflow_env, client, paused_order
):
    order_id = paused_order["order_id"]
    detail = order_api(airflow_env, client, order_id)
    assert detail["status"] == "scheduling_shipment", detail["status"]
    # The paused step's last try carries its failure record (the other tries' records were cleared).
    last = [e for e in detail["history"] if e["step"] == "schedule_shipment"][-1]
    assert last["state"] == "awaiting_input" and last["error"]["error_type"] == "ServiceUnavailableError", last

    # Airflow's UI, logged in with its cookie: "Orders" is in the navigation and opens the page.
    log_in(browser, airflow_env, "admin")
    browser.navigate(f"{airflow_env.base_url}/")
    nav = browser.wait_for(
        "(() => { const a = [...document.querySelectorAll('a')].find(a => a.textContent.trim() === 'Orders');"
        " if (!a) return null; const r = a.getBoundingClientRect();"
        " return {href: a.getAttribute('href'), x: r.left + r.width / 2, y: r.top + r.height / 2}; })()",
        what="the Orders entry in the navigation",
    )
    assert nav["href"].endswith("plugin/orders"), nav
    browser.click(nav["x"], nav["y"])
    browser.wait_for("location.pathname.startsWith('/plugin/orders')", what="the Orders page")

    # The list shows the order started above, with its status, amount, step and a link to its run.
    page = OrdersPage(browser)
    page.wait(f"return [...doc.querySelectorAll('#orders tbody tr')].some(r => r.dataset.orderId === "
              f"{json.dumps(order_id)})", what=f"order {order_id} in the list")
    row = page.row(order_id)
    assert row["cells"][:4] == [order_id, "scheduling_shipment", "$25.00", "schedule_shipment"], row
    assert row["run"] == f"{airflow_env.base_url}/dags/{DAG_ID}/runs/{order_id}", row
    assert page.message() == ""

    # Its details: the history with every try of the shipping step.
    page.click(f'#orders tbody tr[data-order-id="{order_id}"] a.order-link')
    page.wait(f"return doc.getElementById('detail').dataset.orderId === {json.dumps(order_id)}",
              what="the order's details")
    tries = page.in_frame(
        "return [...doc.querySelectorAll('#history tbody tr:not(.error-row)')]"
        ".filter(r => r.dataset.step === 'schedule_shipment').map(r => [r.dataset.try, r.cells[2].textContent]);"
    )
    assert tries == [["1", "failed"], ["2", "failed"], ["3", "awaiting_input"]], tries
    error = page.in_frame(
        "return doc.querySelector('#history tr.error-row[data-step=\"schedule_shipment\"][data-try=\"3\"]')"
        ".textContent;"
    )
    assert error.startswith("ServiceUnavailableError: "), error

    # Cancel: type a reason, click the button.
    reason = f"customer called to cancel {order_id}"
    page.click("#cancel-reason")
    browser.type_text(reason)
    page.click("#cancel-button")
    outcome = page.wait("return doc.getElementById('cancel-result').dataset.outcome", what="the cancel's answer")
    assert outcome == "accepted", page.in_frame("return doc.getElementById('cancel-result').textContent")

    # The request is recorded where the order's steps read it: an Airflow Variable.
    detail = order_api(airflow_env, client, order_id)
    assert detail["cancel_request"]["reason"] == reason and detail["cancel_request"]["requested_by"] == "admin"
    variable = client.get(f"/api/v2/variables/{quote(signals.cancel_key(order_id), safe='')}")
    assert json.loads(variable["value"])["reason"] == reason
    assert [e["owner"] for e in client.event_logs(event="order_api.cancel", run_id=order_id)] == ["admin"]
    page.wait("return doc.getElementById('cancel-form').hidden", what="the cancel form to go away")
    assert reason in page.in_frame("return doc.getElementById('cancel-result').textContent")
    browser.screenshot(airflow_env.deployment.home / "orders-page.png")

    # The run link opens the run in Airflow's UI (the whole window, not the frame).
    page.click(f'#orders tbody tr[data-order-id="{order_id}"] a.run-link')
    browser.wait_for(f"location.pathname.startsWith('/dags/{DAG_ID}/runs/{order_id}')", what="the run's page")
    browser.wait_for(f"document.body.textContent.includes({json.dumps(order_id)})", what="the run's page content")
    time.sleep(1.0)
    browser.screenshot(airflow_env.deployment.home / "orders-run-link.png")
