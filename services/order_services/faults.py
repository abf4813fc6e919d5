"""Fault injection: per-service error rate and latency, reproducible for a given seed. Kept in memory.

A fault hits in one of two phases:

* ``before`` (the default): the request is refused with 503 before anything is done;
* ``after``: the request is carried out and committed, then its answer is lost: 503 instead of it.
  This is how a caller's timeout on a call that did happen is reproduced.

Each request of a faulted service draws once from the service's seeded generator, in arrival order,
whatever the phase: the same seed fails the same requests. The registry also counts the requests that
reached each service (``received``), so a test can wait until a call is in flight.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

SERVICES = ("payment", "inventory", "shipping", "notification")

Phase = Literal["before", "after"]
PHASES: tuple[Phase, ...] = ("before", "after")


@dataclass
class FaultConfig:
    service: str
    error_rate: float
    latency_ms: int
    seed: int
    phase: Phase
    rng: random.Random = field(repr=False)

    def public(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "seed": self.seed,
            "phase": self.phase,
        }


@dataclass(frozen=True)
class FaultDecision:
    latency_seconds: float
    fail: bool
    phase: Phase = "before"


class FaultRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, FaultConfig] = {}
        self._received: dict[str, int] = dict.fromkeys(SERVICES, 0)

    def set(
        self, service: str, error_rate: float, latency_ms: int, seed: int | None, phase: Phase = "before"
    ) -> FaultConfig:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        config = FaultConfig(service, error_rate, latency_ms, seed, phase, random.Random(seed))
        with self._lock:
            self._faults[service] = config
        return config

    def clear(self, service: str | None = None) -> None:
        with self._lock:
            if service is None:
                self._faults.clear()
            else:
                self._faults.pop(service, None)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._faults[name].public() for name in SERVICES if name in self._faults]

    def received(self) -> dict[str, int]:
        """Requests that reached each service's gate since the process started (never reset)."""
        with self._lock:
            return dict(self._received)

    def arrive(self, service: str) -> None:
        """Count a request that reached the service's gate."""
        with self._lock:
            self._received[service] += 1

    def decide(self, service: str) -> FaultDecision | None:
        """One draw per request of a faulted service, in arrival order."""
        with self._lock:
            config = self._faults.get(service)
            if config is None:
                return None
            fail = config.error_rate > 0 and config.rng.random() < config.error_rate
            return FaultDecision(latency_seconds=config.latency_ms / 1000.0, fail=fail, phase=config.phase)
