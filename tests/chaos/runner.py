"""
Drives one chaos run against a running Airflow and the reference services (all on 127.0.0.1).

One loop, one thread: it submits the planned orders through the order API (``POST /orders``), at
most ``in_flight`` unfinished at a time; sends each order's cancel and address change when due;
gives every service a new fault configuration every ``fault_period`` seconds (transient 503s
before and after commit, phases alternating, a seed per configuration); arms and carries out the
worker kills (the killed step's service is slowed down so that its call is caught in flight, then
the step's supervisor and task process are SIGKILLed, found by ``ti.pid`` and checked to descend
from this deployment's scheduler, as in ``tests/integration/test_worker_death_e2e.py``); clears all
faults ``grace`` seconds after the last order was accepted; and stops once every order is final
or ``time_limit`` has passed. Then it collects the evidence of every order
(:class:`tests.chaos.verdict.Evidence`).
"""

from __future__ import annotations

import heapq
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from harness import wait_until_dead
from tests.chaos.plan import (
    SERVICES,
    ChaosSettings,
    FaultConfig,
    FaultSchedule,
    KillPlan,
    OrderPlan,
    Stretch,
    now,
)
from tests.chaos.verdict import Evidence
from tests.integration import test_worker_death_e2e as worker_death

DAG_ID = "order_processing"
FINAL_STATUSES = frozenset({"completed", "cancelled", "failed"})
FORWARD_TASKS = ("validate_order", "process_payment", "approve_order", "reserve_inventory", "schedule_shipment",
                 "wait_for_dispatch", "send_confirmation", "complete_order")
#: Tasks that call a service: a worker killed while running one dies mid-step.
SERVICE_TASKS = frozenset({
    "process_payment", "reserve_inventory", "schedule_shipment", "send_confirmation",
    "refund_payment", "release_inventory", "cancel_shipment",
})
POLL_INTERVAL = 1.5
TICK = 0.25
SUBMIT_SPACING = 0.3
#: How long an order is offered again while ``POST /orders`` answers neither 201 nor 409.
SUBMIT_PATIENCE = 30.0
#: How long a kill stays armed (its service slowed down) waiting for a call in flight.
KILL_ARMED_FOR = 90.0


@dataclass
class Kill:
    plan: KillPlan
    armed_at: float
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    pids: tuple[int, int] | None = None
    killed_after: float | None = None
    gave_up: str | None = None
    #: Processes killed after their try had already ended (not counted as a kill mid-step).
    missed: list[str] = field(default_factory=list)

    def describe(self) -> str:
        missed = f" [missed first: {'; '.join(self.missed)}]" if self.missed else ""
        if self.run_id is None:
            return f"kill ({self.plan.service}, {self.plan.phase}) gave up: {self.gave_up}{missed}"
        return (f"{self.task_id} try {self.try_number} of {self.run_id} (supervisor {self.pids[0]}, task "
                f"{self.pids[1]}; {self.plan.service} slowed, phase {self.plan.phase}){missed}")


@dataclass
class Signal:
    kind: str  # "cancel" or "address"
    order_id: str
    sent_at: float
    code: int | None  # HTTP status, None when the request itself failed
    detail: str = ""


@dataclass
class RunRecord:
    """What happened during the run."""

    started: float
    submitted: dict[str, float] = field(default_factory=dict)
    submit_answers: Counter = field(default_factory=Counter)
    #: Answers other than 201/409 to ``POST /orders`` (each retried), with their bodies.
    submit_refusals: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    signals: list[Signal] = field(default_factory=list)
    signals_not_sent: int = 0
    faults: list[FaultConfig] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    #: The stretches carried out, described.
    stretches: list[str] = field(default_factory=list)
    all_submitted_at: float | None = None
    faults_cleared_at: float | None = None
    ended: float | None = None
    timed_out: bool = False

    def answers(self, kind: str) -> Counter:
        return Counter(s.code for s in self.signals if s.kind == kind)


class ChaosRun:
    def __init__(
        self,
        settings: ChaosSettings,
        plans: list[OrderPlan],
        kills: list[KillPlan],
        *,
        client: Any,
        airflow_env: Any,
        services: Any,
        say: Callable[[str], None] = print,
        stretches: list[Stretch] | None = None,
    ) -> None:
        self.settings = settings
        self.plans = {p.order_id: p for p in plans}
        self.pending = list(plans)
        self.kill_plans = list(kills)
        self.client = client
        self.airflow_env = airflow_env
        self.services = services
        self.say = say
        self.faults = FaultSchedule(settings.seed, settings.error_rate_low, settings.error_rate_high)
        self.events: list[tuple[float, int, str, str]] = []
        self.record = RunRecord(started=now())
        self.prefix = os.path.commonprefix([p.order_id for p in plans]) if plans else "chaos-"
        self._armed: Kill | None = None
        self._at_status: set[str] = set()
        self.stretches = list(stretches or [])
        self._stretch: tuple[Stretch, float] | None = None

    # -- the order API ---------------------------------------------------------------------------

    def _api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.client.request(method, f"/orders{path}", **kwargs)

    def submit(self, plan: OrderPlan) -> None:
        """``POST /orders``, again for up to SUBMIT_PATIENCE s while the answer is neither 201 nor 409."""
        give_up = now() + SUBMIT_PATIENCE
        while True:
            try:
                answer = self._api("POST", "", json=plan.order)
                code, text = answer.status_code, answer.text[:300]
            except requests.RequestException as error:
                code, text = type(error).__name__, str(error)[:300]
            self.record.submit_answers[code] += 1
            if code in (201, 409):  # 409: an earlier attempt whose answer was lost created it
                break
            if code == 422:
                raise AssertionError(f"the chaos plan made an invalid order {plan.order}: {text}")
            self.record.submit_refusals.append(f"{plan.order_id}: {code} {text}")
            if now() > give_up:
                raise AssertionError(f"POST /orders never accepted {plan.order_id}: {self.record.submit_refusals[-3:]}")
            time.sleep(1.0)
        accepted = now()
        self.record.submitted[plan.order_id] = accepted
        if plan.address_at_status:
            self._at_status.add(plan.order_id)
        for delay, kind in ((plan.cancel_after, "cancel"), (plan.address_after, "address")):
            if delay is not None:
                heapq.heappush(self.events, (accepted + delay, len(self.events), kind, plan.order_id))

    def send_signal(self, kind: str, order_id: str) -> None:
        plan = self.plans[order_id]
        try:
            if kind == "cancel":
                answer = self._api("POST", f"/{order_id}/cancel", json={"reason": "chaos: the customer changed their mind"})
            else:
                answer = self._api("POST", f"/{order_id}/shipping-address", json=plan.new_address)
        except requests.RequestException as error:
            self.record.signals.append(Signal(kind, order_id, now(), None, repr(error)))
            return
        detail = ""
        if answer.status_code >= 400:
            try:
                detail = str(answer.json().get("detail", answer.text))[:200]
            except ValueError:
                detail = answer.text[:200]
        self.record.signals.append(Signal(kind, order_id, now(), answer.status_code, detail))

    def poll_statuses(self) -> None:
        offset = 0
        while True:
            params: dict[str, Any] = {"limit": 500, "offset": offset}
            page = self._api("GET", "", params=params, expected=(200,)).json()
            for item in page["orders"]:
                if item["order_id"] in self.plans:
                    self.record.statuses[item["order_id"]] = item["status"]
            offset += len(page["orders"])
            if not page["orders"] or offset >= page["total_entries"]:
                return

    def send_status_signals(self) -> None:
        """Address changes planned for the moment an order is seen at a status (see plan.OrderPlan)."""
        for order_id in list(self._at_status):
            status = self.record.statuses.get(order_id)
            if status == self.plans[order_id].address_at_status:
                self._at_status.discard(order_id)
                self.send_signal("address", order_id)
            elif status in FINAL_STATUSES:
                self._at_status.discard(order_id)
                self.record.signals_not_sent += 1

    def in_flight(self) -> list[str]:
        return [o for o in self.record.submitted if self.record.statuses.get(o) not in FINAL_STATUSES]

    # -- faults ----------------------------------------------------------------------------------

    def set_fault(self, config: FaultConfig) -> None:
        self.services.post("/admin/faults", json=config.body())
        self.record.faults.append(config)

    def change_faults(self) -> None:
        for service in SERVICES:
            if self._armed is not None and self._armed.plan.service == service:
                continue  # slowed down for a kill: left alone until the kill is done
            if self._stretch is not None and self._stretch[0].service == service:
                continue  # down, or every answer lost, until the stretch ends
            self.set_fault(self.faults.next(service))

    # -- stretches: a service down, the carrier's answers lost -----------------------------------------

    def start_stretch(self, stretch: Stretch) -> None:
        self.set_fault(stretch.fault(seed=len(self.record.faults)))
        self._stretch = (stretch, now() + stretch.seconds)
        self.say(f"chaos: {stretch.name}: {stretch.service} ({stretch.phase}) for {stretch.seconds:g}s "
                 f"from {now() - self.record.started:.1f}s")

    def end_stretch(self) -> None:
        assert self._stretch is not None
        stretch, _ = self._stretch
        self._stretch = None
        self.stretches.pop(0)
        self.record.stretches.append(f"{stretch.name}: {stretch.service} ({stretch.phase}) {stretch.seconds:g}s, "
                                     f"back at {now() - self.record.started:.1f}s")
        self.set_fault(self.faults.next(stretch.service))

    def clear_faults(self) -> None:
        self.services.delete("/admin/faults")
        self.record.faults_cleared_at = now()

    # -- worker kills ----------------------------------------------------------------------------

    def arm_kill(self, plan: KillPlan) -> None:
        self._armed = Kill(plan=plan, armed_at=now())
        self.set_fault(self.faults.next(plan.service, latency_ms=self.settings.kill_latency_ms, phase=plan.phase))

    def try_kill(self) -> None:
        kill = self._armed
        assert kill is not None
        tis = self.client.get(
            f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances",
            params={"state": "running", "run_id_prefix_pattern": self.prefix, "limit": 100},
        )["task_instances"]
        # Only a step of the slowed-down service: its call is the one held in flight.
        slowed = [ti for ti in tis if ti["task_id"] in SERVICE_TASKS and ti.get("pid")
                  and ti.get("pool") == f"order_{kill.plan.service}"]
        for ti in slowed:
            if not worker_death.established_connections_to(ti["pid"], self.services.port):
                continue
            try:
                task, supervisor = worker_death.find_step_processes(self.airflow_env, ti)
            except AssertionError as refusal:  # it finished meanwhile, or is not ours: never killed
                kill.gave_up = f"last candidate refused: {refusal}"
                continue
            # The supervisor first: once it is gone nobody can tell the API server anything.
            os.kill(supervisor.pid, signal.SIGKILL)
            os.kill(task.pid, signal.SIGKILL)
            assert wait_until_dead(supervisor.pid) and wait_until_dead(task.pid), "the step survived SIGKILL"
            # The try may have reported its end between the listing and the kill (its process was
            # still exiting): then nothing was killed mid-step, and the kill stays armed.
            after = self.client.task_instance(DAG_ID, ti["dag_run_id"], ti["task_id"])
            if (after["id"], after["state"]) != (ti["id"], "running"):
                kill.missed.append(f"{ti['task_id']} try {ti['try_number']} of {ti['dag_run_id']} had ended "
                                   f"({after['state']}, try {after['try_number']})")
                continue
            kill.run_id, kill.task_id, kill.try_number = ti["dag_run_id"], ti["task_id"], ti["try_number"]
            kill.pids = (supervisor.pid, task.pid)
            kill.killed_after = now() - self.record.started
            self.say(f"chaos: killed {kill.describe()} at {kill.killed_after:.1f}s")
            self._disarm()
            return
        if now() - kill.armed_at > KILL_ARMED_FOR:
            kill.gave_up = kill.gave_up or f"no call in flight within {KILL_ARMED_FOR:g}s"
            self._disarm()

    def _disarm(self) -> None:
        kill = self._armed
        assert kill is not None
        self.record.kills.append(kill)
        self._armed = None
        self.kill_plans.pop(0)
        if self.record.faults_cleared_at is None:
            self.set_fault(self.faults.next(kill.plan.service))
        else:
            self.services.delete("/admin/faults", params={"service": kill.plan.service})

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> RunRecord:
        settings, rec = self.settings, self.record
        deadline = rec.started + settings.time_limit
        next_faults = rec.started
        last_poll = last_submit = 0.0
        try:
            while True:
                t = now()
                if t > deadline:
                    rec.timed_out = True
                    break
                # Faster polls while an address change waits for its order to reach the shipping step.
                if t - last_poll >= (POLL_INTERVAL / 3 if self._at_status else POLL_INTERVAL):
                    self.poll_statuses()
                    self.send_status_signals()
                    last_poll = t
                if self.pending and len(self.in_flight()) < settings.in_flight and t - last_submit >= SUBMIT_SPACING:
                    self.submit(self.pending.pop(0))
                    last_submit = now()
                    if not self.pending:
                        rec.all_submitted_at = last_submit
                while self.events and self.events[0][0] <= now():
                    _, _, kind, order_id = heapq.heappop(self.events)
                    self.send_signal(kind, order_id)
                if rec.faults_cleared_at is None:
                    if t >= next_faults:
                        self.change_faults()
                        next_faults += settings.fault_period
                    if self._stretch is not None and now() >= self._stretch[1]:
                        self.end_stretch()
                    if (self._stretch is None and self._armed is None and self.stretches
                            and len(rec.submitted) >= self.stretches[0].after_submitted):
                        self.start_stretch(self.stretches[0])
                    if (self._armed is None and self._stretch is None and self.kill_plans
                            and len(rec.submitted) >= self.kill_plans[0].after_submitted):
                        self.arm_kill(self.kill_plans[0])
                    if self._armed is not None:
                        self.try_kill()
                    if (rec.all_submitted_at is not None and self._armed is None and not self.kill_plans
                            and not self.stretches and now() - rec.all_submitted_at >= settings.grace):
                        # Every order can settle now: the patient compensations get through.
                        self.clear_faults()
                        self.say(f"chaos: faults cleared at {rec.faults_cleared_at - rec.started:.1f}s; "
                                 f"{len(self.in_flight())} order(s) still in flight")
                elif not self.pending and not self.in_flight():
                    self.poll_statuses()
                    if not self.in_flight():
                        break
                time.sleep(TICK)
        finally:
            if self._armed is not None:
                self._armed.gave_up = self._armed.gave_up or "the run ended first"
                self.record.kills.append(self._armed)
                self._armed = None
            self.services.delete("/admin/faults")
            rec.signals_not_sent += len(self.events) + len(self._at_status)
            rec.ended = now()
        return rec

    # -- evidence --------------------------------------------------------------------------------

    def evidence(self, order_id: str) -> Evidence:
        plan = self.plans[order_id]
        services = self.services
        api = self._api("GET", f"/{order_id}")
        info = api.json() if api.status_code == 200 else {}
        change = info.get("shipping_address_change") or None
        cancel = info.get("cancel_request") or None
        params = {"order_id": order_id}
        return Evidence(
            order=plan.order,
            status=info.get("status") if api.status_code == 200 else f"GET /orders/{order_id}: {api.status_code}",
            ledger=services.audit(order_id),
            charges=services.get("/payment/charges", params=params)["charges"],
            reservations=services.get("/inventory/reservations", params=params)["reservations"],
            shipments=services.get("/shipping/shipments", params=params)["shipments"],
            outbox=services.get("/notification/outbox", params=params)["messages"],
            accepted_address=change["address"] if change else None,
            cancel_accepted_at=cancel.get("requested_at") if cancel else None,
            refusals=plan.refusals,
            signal_answers={s.kind: s.code for s in self.record.signals if s.order_id == order_id},
            sent_address=plan.new_address,
            shipping_started_at=min((h["start"] for h in info.get("history") or []
                                     if h.get("step") == "schedule_shipment" and h.get("start")
                                     and (h.get("try_number") or 0) >= 1), default=None),
            address_changed_at=change.get("changed_at") if change else None,
            failed_step=next((t for t in FORWARD_TASKS if (info.get("task_states") or {}).get(t) == "failed"), None),
            rolled_forward=bool(info.get("rolled_forward")),
        )
