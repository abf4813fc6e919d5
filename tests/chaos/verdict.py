"""
The verdict on one order after a chaos run: what the services hold for it, checked against what the
order API says it became. Pure functions over plain data, so that the rules read in one place and
are tested on their own (``test_verdict.py``).

An order ends in exactly one of:

* ``completed``: status ``completed``; exactly one charge, live and not refunded; exactly one
  reservation, committed; exactly one shipment, not cancelled, to the last address the order API
  accepted; at most one confirmation email;
* ``cancelled`` / ``failed``: nothing live: every charge refunded in full, every reservation
  released or expired, every shipment cancelled, no confirmation email;
* ``manual``: anything else, provided operations were alerted by name ("MANUAL INTERVENTION
  NEEDED: order <id>") and the alert is still live (no "RESOLVED: order <id>: compensation <task>"
  message followed it).

Whatever the outcome, alert or not, nothing is done twice (at most one succeeded charge,
reservation and shipment in the order's ledger), no order ends with a live charge and nothing
shipping (the customer's money held), and none with goods shipping and the charge refunded (the
shop's goods given away). An order whose own values refuse it (a declined card...) never completes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from harness.orders import OPS_EMAIL

MANUAL_PREFIX = "MANUAL INTERVENTION NEEDED: order "
RESOLVED_PREFIX = "RESOLVED: order "
UNDONE_STATUSES = ("cancelled", "failed")
#: A cancel accepted this long before the carrier's pickup must win over it: the pickup wait checks
#: the cancel at every poll (1 s), so this is several polls of slack on a loaded machine.
CANCEL_BEFORE_PICKUP_SLACK = 5.0
ADDRESS_FIELDS = ("name", "line1", "city", "postal_code", "country")
#: The order API and the execution API each take their timestamp before they commit, so an address
#: change refused by the rules can carry a ``changed_at`` a few milliseconds past the step's
#: ``start_date`` (seen: 0.03 s) and still have been seen by the step, which reads it seconds later
#: (whether it was is checked on the shipment itself). Past this slack the API accepted a change
#: while the step was plainly running or retrying.
ADDRESS_CHANGE_SLACK = 1.0
#: A never-settled order's violation starts with this (the run's time limit, not a broken promise).
NEVER_SETTLED = "never settled"


@dataclass
class Evidence:
    """Everything known about one order once the run is over."""

    order: dict[str, Any]
    status: str | None
    ledger: list[dict[str, Any]]
    charges: list[dict[str, Any]]
    reservations: list[dict[str, Any]]
    shipments: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    #: The last address change the order API accepted (200), if any.
    accepted_address: dict[str, Any] | None = None
    #: When the order API accepted a cancel (its ``requested_at``), if it did.
    cancel_accepted_at: str | None = None
    #: What in the order itself keeps it from completing (see plan.OrderPlan.refusals).
    refusals: tuple[str, ...] = ()
    #: The order API's answers to the signals sent: ``{"cancel": 202, "address": 409}`` (None: no answer).
    signal_answers: dict[str, int | None] = field(default_factory=dict)
    #: The address change that was sent, if one was.
    sent_address: dict[str, Any] | None = None
    #: When ``schedule_shipment`` first started (its earliest try), and when the address change was recorded.
    shipping_started_at: str | None = None
    address_changed_at: str | None = None
    #: The first forward step that failed (from the order API's task states), for the summary.
    failed_step: str | None = None
    #: The order was finished instead of undone (its shipment was past the point of no return).
    rolled_forward: bool = False

    @property
    def order_id(self) -> str:
        return self.order["order_id"]


@dataclass
class Verdict:
    order_id: str
    outcome: str  # completed, cancelled, failed, manual, or VIOLATION
    violations: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def _ops_subjects(evidence: Evidence) -> list[str]:
    subjects = []
    for entry in evidence.ledger:
        details = entry.get("details") or {}
        if entry["operation"] == "email" and details.get("to") == OPS_EMAIL and entry["status"] == "succeeded":
            subjects.append(str(details.get("subject", "")))
    return subjects


def manual_alerts(evidence: Evidence) -> list[str]:
    """
    Subjects of the manual-intervention alerts emailed to operations that name this order and are
    still live: an alert about a compensation that a later "RESOLVED" message says succeeded is not.
    """
    wanted = f"{MANUAL_PREFIX}{evidence.order_id}"
    resolved = f"{RESOLVED_PREFIX}{evidence.order_id}: compensation "
    live: list[str] = []
    for subject in _ops_subjects(evidence):
        if subject == wanted or subject.startswith(wanted + ":"):
            live.append(subject)
        elif subject.startswith(resolved):
            task = subject[len(resolved):].split(" ")[0]
            live = [s for s in live if not s.startswith(f"{wanted}: compensation {task} ")]
    return live


def money_and_goods(evidence: Evidence) -> list[str]:
    """Never both kept nor both gone: the customer's money and the shop's goods, whatever was alerted."""
    problems = []
    shipping = [s for s in evidence.shipments if s.get("status") != "cancelled"]
    live_charges = [c for c in evidence.charges if c.get("status") in ("succeeded", "partially_refunded")]
    refunded = [c for c in evidence.charges if c.get("refunded_amount")]
    if live_charges and not shipping:
        problems.append(f"a live charge and nothing shipping (charges {[c.get('status') for c in evidence.charges]})")
    if shipping and refunded:
        problems.append(f"goods shipping ({[s.get('status') for s in shipping]}) with the charge refunded")
    return problems


def _succeeded(evidence: Evidence, service: str, operation: str) -> list[dict[str, Any]]:
    return [e for e in evidence.ledger
            if (e["service"], e["operation"], e["status"]) == (service, operation, "succeeded")]


def customer_emails(evidence: Evidence) -> list[dict[str, Any]]:
    return [m for m in evidence.outbox if m.get("to") != OPS_EMAIL]


def _address_key(address: dict[str, Any] | None) -> tuple:
    address = address or {}
    return tuple(str(address.get(f, "")).strip() for f in ADDRESS_FIELDS)


def expected_address(evidence: Evidence) -> dict[str, Any]:
    """Where a completed order must ship: the last accepted change, else the address it was placed with."""
    return evidence.accepted_address or evidence.order["shipping_address"]


def never_twice(evidence: Evidence) -> list[str]:
    problems = []
    for service, operation, what in (("payment", "charge", "charged"), ("inventory", "reserve", "reserved"),
                                     ("shipping", "schedule", "shipped")):
        done = _succeeded(evidence, service, operation)
        if len(done) > 1:
            keys = sorted({e.get("idempotency_key") for e in done})
            problems.append(f"{what} {len(done)} times (ledger {service}.{operation} succeeded x{len(done)}, keys {keys})")
    for name, records in (("charges", evidence.charges), ("reservations", evidence.reservations),
                          ("shipments", evidence.shipments)):
        if len(records) > 1:
            problems.append(f"{len(records)} {name} at the service for one order")
    emails = customer_emails(evidence)
    if len(emails) > 1:
        problems.append(f"{len(emails)} confirmation emails to the customer")
    return problems


def completed_problems(evidence: Evidence) -> list[str]:
    problems = []
    live_charges = [c for c in evidence.charges if c.get("status") == "succeeded" and not c.get("refunded_amount")]
    if len(live_charges) != 1 or len(evidence.charges) != 1:
        problems.append(f"completed with charges {[(c.get('status'), c.get('refunded_amount')) for c in evidence.charges]}"
                        " (want exactly one, live, not refunded)")
    elif live_charges[0].get("amount") != evidence.order["total_amount"]:
        problems.append(f"charged {live_charges[0].get('amount')} for a total of {evidence.order['total_amount']}")
    committed = [r for r in evidence.reservations if r.get("status") == "committed"]
    if len(committed) != 1 or len(evidence.reservations) != 1:
        problems.append(f"completed with reservations {[r.get('status') for r in evidence.reservations]}"
                        " (want exactly one, committed)")
    live_shipments = [s for s in evidence.shipments if s.get("status") != "cancelled"]
    if len(live_shipments) != 1:
        problems.append(f"completed with shipments {[s.get('status') for s in evidence.shipments]}"
                        " (want exactly one not cancelled)")
    else:
        shipped_to = live_shipments[0].get("address")
        want = expected_address(evidence)
        if _address_key(shipped_to) != _address_key(want):
            source = "the accepted address change" if evidence.accepted_address else "the order's address"
            problems.append(f"shipped to {_address_key(shipped_to)}, not to {source} {_address_key(want)}")
        if evidence.cancel_accepted_at and live_shipments[0].get("dispatch_at"):
            cancelled = _aware(evidence.cancel_accepted_at)
            pickup = _aware(live_shipments[0]["dispatch_at"])
            ahead = (pickup - cancelled).total_seconds()
            if ahead > CANCEL_BEFORE_PICKUP_SLACK:
                problems.append(f"completed although a cancel was accepted {ahead:.1f}s before the carrier's pickup")
    if len(customer_emails(evidence)) > 1:
        problems.append("more than one confirmation email")
    if evidence.refusals:
        problems.append(f"completed although the order cannot be fulfilled: {', '.join(evidence.refusals)}")
    if "UNDELIVERABLE" in str(expected_address(evidence).get("line1", "")).upper():
        problems.append("completed although its address is undeliverable")
    return problems


def undone_problems(evidence: Evidence) -> list[str]:
    problems = []
    for charge in evidence.charges:
        if charge.get("status") != "refunded" or charge.get("refunded_amount") != charge.get("amount"):
            problems.append(f"charge {charge.get('payment_id')} is {charge.get('status')}, refunded "
                            f"{charge.get('refunded_amount')} of {charge.get('amount')}")
    for reservation in evidence.reservations:
        if reservation.get("status") not in ("released", "expired"):
            problems.append(f"reservation {reservation.get('reservation_id')} is {reservation.get('status')}")
    for shipment in evidence.shipments:
        if shipment.get("status") != "cancelled":
            problems.append(f"shipment {shipment.get('shipment_id')} is {shipment.get('status')}")
    if customer_emails(evidence):
        problems.append("a confirmation email went out for an order that was undone")
    return problems


def signal_problems(evidence: Evidence) -> list[str]:
    """What the order API answered must be what it recorded: an accepted signal is kept, a refused one is not."""
    problems = []
    address, cancel = evidence.signal_answers.get("address"), evidence.signal_answers.get("cancel")
    if address == 200:
        if evidence.accepted_address is None:
            problems.append("the address change was accepted (200) but is not recorded")
        elif _address_key(evidence.accepted_address) != _address_key(evidence.sent_address):
            problems.append(f"recorded address {_address_key(evidence.accepted_address)} is not the one accepted "
                            f"{_address_key(evidence.sent_address)}")
    elif address == 409 and evidence.accepted_address is not None:
        problems.append("the address change was refused (409) but is recorded")
    if evidence.address_changed_at and evidence.shipping_started_at:
        late = (_aware(evidence.address_changed_at) - _aware(evidence.shipping_started_at)).total_seconds()
        if late > ADDRESS_CHANGE_SLACK:
            problems.append(f"the address change was accepted {late:.1f}s after schedule_shipment started its first try")
    if cancel == 202 and evidence.cancel_accepted_at is None:
        problems.append("the cancel was accepted (202) but is not recorded")
    elif cancel == 409 and evidence.cancel_accepted_at is not None:
        problems.append("the cancel was refused (409) but is recorded")
    return problems


def _aware(moment: str) -> datetime:
    value = datetime.fromisoformat(moment)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def judge(evidence: Evidence) -> Verdict:
    """The order's outcome, and every broken promise (empty when it kept them all)."""
    alerts = manual_alerts(evidence)
    verdict = Verdict(order_id=evidence.order_id, outcome=str(evidence.status), alerts=alerts)
    if evidence.status == "completed":
        problems = completed_problems(evidence)
    elif evidence.status in UNDONE_STATUSES:
        problems = undone_problems(evidence)
    else:
        problems = [f"{NEVER_SETTLED}: status {evidence.status}"]
    if problems:
        if alerts:
            verdict.outcome = "manual"
            verdict.notes.extend(problems)
        else:
            verdict.outcome = "VIOLATION"
            verdict.violations.extend(f"{p} (status {evidence.status}, no manual-intervention alert)" for p in problems)
    # Never twice, money and goods, and the signals' answers kept, whatever the outcome and whatever
    # was alerted.
    verdict.violations.extend(never_twice(evidence))
    verdict.violations.extend(money_and_goods(evidence))
    verdict.violations.extend(signal_problems(evidence))
    if verdict.violations:
        verdict.outcome = "VIOLATION"
    return verdict
