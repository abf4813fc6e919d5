"""Fault injection: per-service error rate and latency, reproducible for a given seed. Kept in memory."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

SERVICES = ("payment", "inventory", "shipping", "notification")


@dataclass
class FaultConfig:
    service: str
    error_rate: float
    latency_ms: int
    seed: int
    rng: random.Random = field(repr=False)

    def public(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class FaultDecision:
    latency_seconds: float
    fail: bool


class FaultRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, FaultConfig] = {}

    def set(self, service: str, error_rate: float, latency_ms: int, seed: int | None) -> FaultConfig:
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        config = FaultConfig(service, error_rate, latency_ms, seed, random.Random(seed))
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

    def decide(self, service: str) -> FaultDecision | None:
        """One draw per request of that service, in arrival order."""
        with self._lock:
            config = self._faults.get(service)
            if config is None:
                return None
            fail = config.error_rate > 0 and config.rng.random() < config.error_rate
            return FaultDecision(latency_seconds=config.latency_ms / 1000.0, fail=fail)
