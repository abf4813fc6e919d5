// The Orders page: plain JavaScript over the order API, no build step.
//
// Every request goes to the order API next to this page (/orders/...) with the browser's
// credentials: the Airflow UI's session cookie (`_token`, HttpOnly, SameSite=Lax), which Airflow's
// own security dependency accepts when no Authorization header is sent. The page never sees the
// token. Without a session (401) or without permission (403) it says so and shows nothing.
"use strict";

(() => {
  const DAG_ID = "order_processing";
  const PAGE_SIZE = 25;
  const REFRESH_MS = 5000;
  const FINAL = new Set(["completed", "cancelled", "failed"]);

  // /orders/ui -> the API at /orders/, Airflow's UI at / (both under the deployment's base path).
  const apiBase = new URL(".", window.location.href);
  const airflowBase = new URL("..", apiBase);

  const $ = (id) => document.getElementById(id);
  const state = { offset: 0, status: "", selected: null, total: 0 };

  // -- helpers ------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super(describeError(status, body));
      this.status = status;
      this.body = body;
    }
  }

  function describeError(status, body) {
    const detail = body && body.detail;
    if (status === 401) return "You are not logged in to Airflow: log in, then reload this page.";
    if (status === 403) return `You may not do this (${typeof detail === "string" ? detail : "forbidden"}).`;
    if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    if (typeof detail === "string") return detail;
    return `The order API answered ${status}.`;
  }

  async function api(path, options = {}) {
    const response = await fetch(new URL(path, apiBase), {
      credentials: "same-origin",
      ...options,
      headers: { Accept: "application/json", ...(options.headers || {}) },
    });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function showMessage(text) {
    const box = $("message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function money(amount, currency) {
    if (amount === null || amount === undefined) return "";
    try {
      const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
      const digits = format.resolvedOptions().maximumFractionDigits;
      return format.format(amount / 10 ** digits);
    } catch (e) {
      return `${amount} ${currency || ""}`.trim();
    }
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d`;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }

  // A time of day (with the date only when it is not today), the full date in the tooltip.
  function timeCell(iso) {
    const cell = el("td");
    if (!iso) return cell;
    const date = new Date(iso);
    const today = date.toDateString() === new Date().toDateString();
    cell.textContent = today ? date.toLocaleTimeString() : date.toLocaleString();
    cell.title = date.toISOString();
    return cell;
  }

  function statusBadge(status) {
    return el("span", status, `status ${status}`);
  }

  function runHref(runId) {
    return new URL(`dags/${DAG_ID}/runs/${encodeURIComponent(runId)}`, airflowBase).href;
  }

  // The UI shows this page in a sandboxed frame that may not navigate the window on its own: move
  // the Airflow UI (same origin) to the run through its router instead, else open it in this frame.
  function openInAirflow(event) {
    const href = event.currentTarget.href;
    if (window.top === window) return;
    try {
      const top = window.top;
      const url = new URL(href);
      const idx = (top.history.state && typeof top.history.state.idx === "number") ? top.history.state.idx + 1 : 0;
      top.history.pushState({ usr: null, key: Math.random().toString(36).slice(2, 10), idx }, "",
        url.pathname + url.search + url.hash);
      top.dispatchEvent(new PopStateEvent("popstate", { state: top.history.state }));
      event.preventDefault();
    } catch (e) {
      // not allowed: follow the link in this frame
    }
  }

  function runLink(runId, text) {
    const a = el("a", text || "grid");
    a.href = runHref(runId);
    a.target = "_top";
    a.className = "run-link";
    a.addEventListener("click", (event) => {
      event.stopPropagation();
      openInAirflow(event);
    });
    return a;
  }

  function facts(dl, pairs) {
    dl.replaceChildren();
    for (const [label, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(el("dt", label));
      const dd = el("dd");
      if (value instanceof Node) dd.append(value);
      else dd.textContent = String(value);
      dl.append(dd);
    }
  }

  // -- the list -----------------------------------------------------------------------------------

  // What the deployment lacks for orders (a missing pool or connection): a banner over the list.
  async function loadHealth() {
    try {
      const health = await api(`health`);
      const list = $("setup-problem-list");
      list.replaceChildren(...(health.problems || []).map((problem) => el("li", problem)));
      $("setup-problems").hidden = !(health.problems || []).length;
    } catch (error) {
      $("setup-problems").hidden = true;  // not logged in: the list's message says so
    }
  }

  async function loadList() {
    loadHealth();
    const params = new URLSearchParams({ limit: PAGE_SIZE, offset: state.offset });
    if (state.status) params.set("status", state.status);
    try {
      const data = await api(`./?${params}`);
      showMessage("");
      renderList(data);
      $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      showMessage(error.message);
      if (error.status === 401 || error.status === 403) renderList({ orders: [], total_entries: 0 });
    }
  }

  function renderList(data) {
    state.total = data.total_entries;
    const body = $("orders").querySelector("tbody");
    body.replaceChildren();
    for (const order of data.orders) {
      const row = el("tr");
      row.dataset.orderId = order.order_id;
      if (order.order_id === state.selected) row.classList.add("selected");
      const idCell = el("td");
      const idLink = el("a", order.order_id, "order-link");
      idLink.href = `#${encodeURIComponent(order.order_id)}`;
      idCell.append(idLink);
      const statusCell = el("td");
      statusCell.append(statusBadge(order.status));
      const runCell = el("td");
      runCell.append(runLink(order.run_id));
      row.append(
        idCell,
        statusCell,
        el("td", money(order.total_amount, order.currency), "num"),
        el("td", order.current_step || ""),
        el("td", order.customer_id || ""),
        el("td", age(order.age_seconds), "num"),
        runCell,
      );
      row.addEventListener("click", () => select(order.order_id));
      body.append(row);
    }
    $("empty").hidden = data.orders.length > 0;
    const first = data.total_entries ? state.offset + 1 : 0;
    const last = state.offset + data.orders.length;
    $("page-info").textContent = `${first}\u2013${last} of ${data.total_entries}`;
    $("prev").disabled = state.offset === 0;
    $("next").disabled = last >= data.total_entries;
  }

  // -- one order ----------------------------------------------------------------------------------

  function select(orderId) {
    if (window.location.hash !== `#${encodeURIComponent(orderId)}`) {
      window.location.hash = encodeURIComponent(orderId);  // -> hashchange -> loadDetail
    } else {
      loadDetail();
    }
  }

  async function loadDetail() {
    const orderId = decodeURIComponent(window.location.hash.slice(1));
    state.selected = orderId || null;
    for (const row of document.querySelectorAll("#orders tbody tr")) {
      row.classList.toggle("selected", row.dataset.orderId === state.selected);
    }
    if (!orderId) {
      $("detail").hidden = true;
      return;
    }
    try {
      const order = await api(encodeURIComponent(orderId));
      renderDetail(order);
    } catch (error) {
      $("detail").hidden = true;
      showMessage(error.message);
    }
  }

  function renderDetail(order) {
    const detail = $("detail");
    const changed = detail.dataset.orderId !== order.order_id;
    detail.dataset.orderId = order.order_id;
    detail.dataset.status = order.status;
    detail.hidden = false;
    $("d-order-id").textContent = order.order_id;
    $("d-status").replaceChildren(statusBadge(order.status));
    const o = order.order || {};
    const address = o.shipping_address || {};
    const change = order.shipping_address_change;
    facts($("d-summary"), [
      ["Current step", order.current_step],
      ["Waiting for", (order.waiting_for || []).join("; ") || null],
      ["Amount", money(o.total_amount, o.currency)],
      ["Customer", [o.customer_id, o.customer_email].filter(Boolean).join(" \u00b7 ")],
      ["Items", (o.items || []).map((i) => `${i.quantity} \u00d7 ${i.sku}`).join(", ")],
      ["Ship to", [address.name, address.line1, address.city, address.country].filter(Boolean).join(", ")],
      ["New address", change ? `${[change.address.name, change.address.line1, change.address.city,
        change.address.country].join(", ")} (by ${change.changed_by})` : null],
      ["Created", when(order.created_at)],
      ["Updated", when(order.updated_at)],
      ["Run", runLink(order.run_id, order.run_id)],
    ]);

    const cancel = order.cancel_request;
    const canCancel = !cancel && !FINAL.has(order.status) && order.status !== "compensating";
    $("cancel-form").hidden = !canCancel;
    if (changed) {
      $("cancel-reason").value = "";
      $("cancel-result").textContent = "";
    }
    if (cancel) {
      $("cancel-result").textContent =
        `Cancel requested by ${cancel.requested_by} at ${when(cancel.requested_at)}: ${cancel.reason}`;
    }

    const r = order.results || {};
    facts($("d-results"), [
      ["Payment", r.payment_id],
      ["Reservation", r.reservation_id],
      ["Shipment", r.shipment_id],
      ["Tracking number", r.tracking_number],
      ["Carrier", r.carrier],
      ["Confirmation", r.confirmation_message_id],
      ["Cancelled because", r.cancellation ? r.cancellation.reason : null],
    ]);

    // Which compensations are done, still trying (next try), need a person; an order rolled forward.
    const undo = order.compensations || {};
    const says = (c) => {
      if (c.state === "trying") {
        return `still trying${c.next_try_at ? `, next try ${when(c.next_try_at)}` : ""}` +
          `${c.calls ? ` (${c.calls} calls, last: ${c.last_error})` : ""}`;
      }
      if (c.state === "needs_person") return `needs a person${c.last_error ? `: ${c.last_error}` : ""}`;
      if (c.state === "waiting") return `waiting for ${(c.for || []).join(", ")}`;
      return c.state === "not_needed" ? "not needed" : c.state;
    };
    facts($("d-compensations"), [
      ...Object.entries(undo).map(([task, c]) => [task, says(c)]),
      ["Rolled forward", order.rolled_forward ? "yes: the parcel had left, the order was completed instead" : null],
    ]);

    const body = $("history").querySelector("tbody");
    body.replaceChildren();
    for (const attempt of order.history) {
      const row = el("tr");
      row.dataset.step = attempt.step;
      row.dataset.try = attempt.try_number;
      row.append(
        el("td", attempt.step),
        el("td", attempt.try_number, "num"),
        el("td", attempt.state, `state-${attempt.state}`),
        timeCell(attempt.start),
        timeCell(attempt.end),
        el("td", attempt.duration === null ? "" : `${attempt.duration.toFixed(1)} s`, "num"),
      );
      body.append(row);
      const error = attempt.error;
      if (error) {
        // What the step recorded about its failed call, on a line of its own under the try.
        const errorRow = el("tr", null, "error-row");
        errorRow.dataset.step = attempt.step;
        errorRow.dataset.try = attempt.try_number;
        const cell = el("td", [error.error_type, error.message].filter(Boolean).join(": "), "error-cell");
        cell.colSpan = 6;
        errorRow.append(cell);
        body.append(errorRow);
      }
    }
  }

  async function submitCancel(event) {
    event.preventDefault();
    const orderId = state.selected;
    const reason = $("cancel-reason").value.trim();
    if (!orderId || !reason) return;
    const button = $("cancel-button");
    button.disabled = true;
    try {
      const answer = await api(`${encodeURIComponent(orderId)}/cancel`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason }),
      });
      $("cancel-result").textContent =
        `Cancel requested by ${answer.cancel_request.requested_by}: ${answer.cancel_request.reason}`;
      $("cancel-result").dataset.outcome = "accepted";
    } catch (error) {
      $("cancel-result").textContent = error.message;
      $("cancel-result").dataset.outcome = `error-${error.status}`;
    } finally {
      button.disabled = false;
    }
    await Promise.all([loadDetail(), loadList()]);
  }

  // -- wiring -------------------------------------------------------------------------------------

  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.status = $("status-filter").value;
    state.offset = 0;
    loadList();
  });
  $("status-filter").addEventListener("change", () => $("filters").requestSubmit());
  $("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    loadList();
  });
  $("next").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    loadList();
  });
  $("close-detail").addEventListener("click", () => {
    window.location.hash = "";
  });
  $("cancel-form").addEventListener("submit", submitCancel);
  window.addEventListener("hashchange", loadDetail);

  loadList();
  loadDetail();
  setInterval(() => {
    if (document.hidden) return;
    loadList();
    if (state.selected) loadDetail();
  }, REFRESH_MS);
})();
