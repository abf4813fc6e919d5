"""
The chaos suite's plan: every random choice of a run, drawn from one seed.

Pure (no Airflow, no HTTP): the orders and their test values, when each order is cancelled or
re-addressed, the fault configurations each service gets over the run, and which service is slowed
down for each worker kill. The same seed gives the same plan; what the concurrent run then makes of
it (which request meets which fault) depends on timing, which is why the verdict
(:mod:`tests.chaos.verdict`) never expects an outcome from the plan alone, only what an order
cannot do (a declined card never completes).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

SERVICES = ("payment", "inventory", "shipping", "notification")
#: Services whose forward step is slowed down to catch its call in flight for a worker kill.
KILL_SERVICES = ("payment", "inventory", "shipping")
PHASES = ("before", "after")

#: The services' test values (docs/reference-services.md, harness/orders.py) and how often they are drawn.
DECLINED_METHODS = ("pm_card_declined", "pm_card_fraud", "pm_card_expired", "pm_card_insufficient_funds")
OUT_OF_STOCK_SKU = "SKU-OUT-OF-STOCK"
DISCONTINUED_SKU = "SKU-DISCONTINUED"
UNSERVICED_REGION = "unserviced"
UNDELIVERABLE_LINE1 = "1 UNDELIVERABLE Street"
P_DECLINED = 0.12
P_OUT_OF_STOCK = 0.05
P_DISCONTINUED = 0.04
P_UNSERVICED = 0.04
P_UNDELIVERABLE = 0.05
P_PREMIUM = 0.25
#: Orders that ask for a workflow timeout shorter than the deployment's (seconds before time_scale).
P_SHORT_WORKFLOW = 0.1
SHORT_WORKFLOW_SECONDS = (1500, 4000)
P_CANCEL = 0.15
P_ADDRESS_CHANGE = 0.15
#: Share of address changes sent the moment the order is seen at the shipping step (its first try
#: or a retry about to start): the race the order API must refuse once the step has started.
P_CHANGE_AT_SHIPPING = 0.5
#: Share of address changes that ask for an address the carrier cannot deliver to.
P_CHANGE_UNDELIVERABLE = 0.2
#: Signals are sent this many seconds (at most) after the order was accepted: most orders are in
#: flight for about 20-40 s, so some signals meet a running order and some a finished one.
CANCEL_WINDOW = 30.0
ADDRESS_WINDOW = 15.0
#: Totals stay at or below this, under the approval threshold (100000 minor units), so no order
#: waits for a person: 3 lines x 2 x 15000.
MAX_UNIT_PRICE = 15000
MAX_QUANTITY = 2
MAX_LINES = 3

REGIONS = ("eu-west", "us-east", "ap-south")
ADDRESSES = (
    {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
    {"name": "Grace Hopper", "line1": "1 Navy Yard", "city": "Arlington", "postal_code": "22202", "country": "US"},
    {"name": "Emmy Noether", "line1": "5 Bunsenstrasse", "city": "Goettingen", "postal_code": "37073", "country": "DE"},
    {"name": "Alan Turing", "line1": "9 Bletchley Park", "city": "Milton Keynes", "postal_code": "MK3 6EB", "country": "GB"},
)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class ChaosSettings:
    """What a chaos run does; every field can be set from the environment (``CHAOS_*``)."""

    orders: int = 30
    seed: int = 0
    #: Orders submitted and not yet final, at most.
    in_flight: int = 6
    #: Each service gets a new fault configuration this often (seconds).
    fault_period: float = 6.0
    #: Injected transient error rate, drawn per configuration in this range.
    error_rate_low: float = 0.2
    error_rate_high: float = 0.3
    #: Workers killed mid-step (each while its step's call is in flight).
    kills: int = 2
    #: Latency of the slowed-down service while a kill is armed (below the 5 s step timeout).
    kill_latency_ms: int = 3000
    #: Seconds after the last order was accepted before every fault is cleared.
    grace: float = 10.0
    #: The whole run (submissions, chaos, settling) must end within this many seconds.
    time_limit: float = 0.0
    #: One service down (every call refused) for this long, then back; 0: no outage.
    outage_seconds: float = 20.0
    #: Every answer of the carrier lost (its calls carried out) for this long, longer than the
    #: services' dispatch delay, so that parcels are picked up while their answers are lost; 0: none.
    carrier_lost_seconds: float = 15.0

    @classmethod
    def from_env(cls) -> ChaosSettings:
        orders = _env_int("CHAOS_ORDERS", cls.orders)
        raw_seed = os.environ.get("CHAOS_SEED", "").strip()
        # Without CHAOS_SEED every run explores a new plan; the seed is reported, so any run can be replayed.
        seed = int(raw_seed) if raw_seed else int.from_bytes(os.urandom(4), "big") % 1_000_000
        return cls(
            orders=orders,
            seed=seed,
            in_flight=_env_int("CHAOS_IN_FLIGHT", cls.in_flight),
            fault_period=_env_float("CHAOS_FAULT_PERIOD", cls.fault_period),
            kills=_env_int("CHAOS_KILLS", max(cls.kills, orders // 25)),
            grace=_env_float("CHAOS_GRACE", cls.grace),
            # Measured on 2 shared cores: 5-6 s of wall time per order (N=30), 11-25 s under a load
            # average of 20 (N=80, N=10); plus settling.
            time_limit=_env_float("CHAOS_TIME_LIMIT", 150.0 + 15.0 * orders),
            outage_seconds=_env_float("CHAOS_OUTAGE_SECONDS", cls.outage_seconds),
            carrier_lost_seconds=_env_float("CHAOS_CARRIER_LOST_SECONDS", cls.carrier_lost_seconds),
        )


@dataclass(frozen=True)
class OrderPlan:
    """One order and the signals it will get."""

    order: dict[str, Any]
    #: Seconds after the order was accepted at which it is cancelled (None: never).
    cancel_after: float | None = None
    #: Seconds after the order was accepted at which its address is changed (None: never).
    address_after: float | None = None
    new_address: dict[str, Any] | None = None
    #: Send the address change when the order is first seen in this status instead of after a delay.
    address_at_status: str | None = None
    #: What in the order itself keeps it from ever completing (a declined card, a discontinued SKU...).
    refusals: tuple[str, ...] = ()

    @property
    def order_id(self) -> str:
        return self.order["order_id"]


@dataclass(frozen=True)
class FaultConfig:
    """One ``POST /admin/faults`` body."""

    service: str
    error_rate: float
    phase: str
    seed: int
    latency_ms: int = 0

    def body(self) -> dict[str, Any]:
        return {"service": self.service, "error_rate": self.error_rate, "latency_ms": self.latency_ms,
                "seed": self.seed, "phase": self.phase}


@dataclass(frozen=True)
class KillPlan:
    """The k-th worker kill: after ``after_submitted`` orders were accepted, slow ``service`` down
    (phase ``phase``: ``after`` commits the call before the answer is held back, so the kill loses
    an answer; ``before`` holds the request back before anything is done) and kill the worker of
    the first step caught with its call in flight."""

    after_submitted: int
    service: str
    phase: str


@dataclass(frozen=True)
class Stretch:
    """
    A stretch of one service answering nothing, once ``after_submitted`` orders were accepted:
    phase ``before`` is the service down (every call refused before anything is done), ``after``
    every answer lost (every call carried out). The service's random faults pause meanwhile.
    """

    name: str
    after_submitted: int
    service: str
    phase: str
    seconds: float

    def fault(self, seed: int) -> FaultConfig:
        return FaultConfig(service=self.service, error_rate=1.0, phase=self.phase, seed=seed)


#: Services an outage may hit: those with a compensation (the notification service's outage only
#: delays confirmations and alerts).
OUTAGE_SERVICES = ("payment", "inventory", "shipping")


def plan_stretches(settings: ChaosSettings) -> list[Stretch]:
    """The outage (a service drawn from the seed) after a third of the orders, and the carrier's lost
    answers after two thirds."""
    rng = random.Random(f"stretches-{settings.seed}")
    stretches = []
    if settings.outage_seconds > 0:
        stretches.append(Stretch("outage", max(1, settings.orders // 3), rng.choice(OUTAGE_SERVICES), "before",
                                 settings.outage_seconds))
    if settings.carrier_lost_seconds > 0:
        stretches.append(Stretch("carrier answers lost", max(1, 2 * settings.orders // 3), "shipping", "after",
                                 settings.carrier_lost_seconds))
    return stretches


@dataclass
class FaultSchedule:
    """Each service's next fault configurations: a seed per service, phases alternating."""

    seed: int
    low: float
    high: float
    _rngs: dict[str, random.Random] = field(default_factory=dict, init=False)
    _phase: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        master = random.Random(f"faults-{self.seed}")
        for service in SERVICES:
            self._rngs[service] = random.Random(master.randrange(2**31))
            self._phase[service] = master.randrange(2)

    def next(self, service: str, latency_ms: int = 0, phase: str | None = None) -> FaultConfig:
        rng = self._rngs[service]
        drawn_phase = PHASES[self._phase[service] % 2]
        self._phase[service] += 1
        return FaultConfig(
            service=service,
            error_rate=round(rng.uniform(self.low, self.high), 3),
            phase=phase or drawn_phase,
            seed=rng.randrange(2**31),
            latency_ms=latency_ms,
        )


def _address(rng: random.Random, region: str, *, undeliverable: bool) -> dict[str, Any]:
    address = {**rng.choice(ADDRESSES), "region": region}
    if undeliverable:
        address["line1"] = UNDELIVERABLE_LINE1
    return address


def plan_orders(settings: ChaosSettings, run_tag: str | None = None) -> list[OrderPlan]:
    """``settings.orders`` orders drawn from ``settings.seed`` (ids made unique by ``run_tag``)."""
    rng = random.Random(settings.seed)
    tag = run_tag or uuid.uuid4().hex[:6]
    skus = [f"SKU-CHAOS-{settings.seed}-{k}" for k in range(8)]
    plans = []
    for n in range(settings.orders):
        refusals: list[str] = []
        method = "pm_card_ok"
        if rng.random() < P_DECLINED:
            method = rng.choice(DECLINED_METHODS)
            refusals.append(f"payment_method {method}")
        items = [
            {"sku": rng.choice(skus), "quantity": rng.randint(1, MAX_QUANTITY),
             "unit_price": rng.randint(100, MAX_UNIT_PRICE)}
            for _ in range(rng.randint(1, MAX_LINES - 1))
        ]
        if rng.random() < P_OUT_OF_STOCK:
            items.append({"sku": OUT_OF_STOCK_SKU, "quantity": 1, "unit_price": rng.randint(100, MAX_UNIT_PRICE)})
            refusals.append(f"sku {OUT_OF_STOCK_SKU}")
        elif rng.random() < P_DISCONTINUED:
            items.append({"sku": DISCONTINUED_SKU, "quantity": 1, "unit_price": rng.randint(100, MAX_UNIT_PRICE)})
            refusals.append(f"sku {DISCONTINUED_SKU}")
        region = rng.choice(REGIONS)
        if rng.random() < P_UNSERVICED:
            region = UNSERVICED_REGION
            refusals.append(f"region {UNSERVICED_REGION}")
        address = _address(rng, region, undeliverable=rng.random() < P_UNDELIVERABLE)
        order_id = f"chaos-{settings.seed}-{tag}-{n:04d}"
        order = {
            "order_id": order_id,
            "customer_id": f"cus-{rng.randint(1, 50)}",
            "customer_email": f"customer-{n}@example.com",
            "customer_tier": "premium" if rng.random() < P_PREMIUM else "standard",
            "items": items,
            "shipping_address": address,
            "total_amount": sum(i["quantity"] * i["unit_price"] for i in items),
            "currency": "USD",
            "payment_method": method,
        }
        if rng.random() < P_SHORT_WORKFLOW:
            order["workflow_timeout_seconds"] = rng.randint(*SHORT_WORKFLOW_SECONDS)
        cancel_after = round(rng.uniform(0, CANCEL_WINDOW), 2) if rng.random() < P_CANCEL else None
        address_after = new_address = address_at_status = None
        if rng.random() < P_ADDRESS_CHANGE:
            address_after = round(rng.uniform(0, ADDRESS_WINDOW), 2)
            if rng.random() < P_CHANGE_AT_SHIPPING:
                address_after, address_at_status = None, "scheduling_shipment"
            # The region stays: the reservation was made for it.
            new_address = _address(rng, region, undeliverable=rng.random() < P_CHANGE_UNDELIVERABLE)
            new_address["line2"] = f"changed for {order_id}"
        plans.append(OrderPlan(order, cancel_after, address_after, new_address, address_at_status, tuple(refusals)))
    return plans


def plan_kills(settings: ChaosSettings) -> list[KillPlan]:
    """
    The worker kills, spread over the submissions; phases alternate, ``after`` first. The first
    slows the payment service down, which every order calls first, so that at least one kill finds
    a call in flight however the orders fare; the others pick a service at random.
    """
    rng = random.Random(f"kills-{settings.seed}")
    kills = []
    for k in range(settings.kills):
        after = max(1, (k + 1) * settings.orders // (settings.kills + 1))
        service = KILL_SERVICES[0] if k == 0 else rng.choice(KILL_SERVICES)
        kills.append(KillPlan(after_submitted=after, service=service, phase=PHASES[(k + 1) % 2]))
    return kills


def now() -> float:
    return time.monotonic()
