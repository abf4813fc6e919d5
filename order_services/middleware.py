"""The gate in front of every route: authentication, fault injection, Idempotency-Key presence.

Runs before routing and body validation, so an unauthenticated or fault-injected request does no work
(a fault in phase ``after`` lets the request through and replaces its answer once it is committed).
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from order_services.errors import (
    AUTHENTICATION,
    IDEMPOTENCY_KEY_MISSING,
    SERVICE_UNAVAILABLE,
    error_response,
)
from order_services.faults import SERVICES, FaultDecision, FaultRegistry


def service_for_path(path: str) -> str | None:
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in SERVICES else None


def _unavailable(service: str) -> ASGIApp:
    return error_response(503, SERVICE_UNAVAILABLE, f"{service} service unavailable (injected fault)")


class GateMiddleware:
    def __init__(self, app: ASGIApp, *, api_key: str | None, faults: FaultRegistry) -> None:
        self.app = app
        self._api_key = api_key.encode() if api_key else None
        self._faults = faults

    def _authorized(self, authorization: str | None) -> bool:
        assert self._api_key is not None
        scheme, _, token = (authorization or "").partition(" ")
        presented = token.strip().encode() if scheme.lower() == "bearer" else b""
        return hmac.compare_digest(presented, self._api_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        headers = Headers(scope=scope)
        service = service_for_path(path)
        if service is not None:  # counted on arrival, before anything else: "the service has the request"
            self._faults.arrive(service)

        is_health = path == "/health" and method in ("GET", "HEAD")
        if self._api_key is not None and not is_health and not self._authorized(headers.get("authorization")):
            response = error_response(
                401,
                AUTHENTICATION,
                "missing or invalid API key (expected 'Authorization: Bearer <key>')",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return

        decision = self._faults.decide(service) if service is not None else None
        if service is not None and decision is not None and decision.phase == "before":
            if decision.latency_seconds > 0:
                await asyncio.sleep(decision.latency_seconds)
            if decision.fail:
                await _unavailable(service)(scope, receive, send)
                return

        if service is not None and method == "POST" and not headers.get("idempotency-key", "").strip():
            response = error_response(
                400, IDEMPOTENCY_KEY_MISSING, "POST requests require an Idempotency-Key header"
            )
            await response(scope, receive, send)
            return

        if service is not None and decision is not None and decision.phase == "after":
            await self._run_then_fault(service, decision, scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _run_then_fault(
        self, service: str, decision: FaultDecision, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Carry the request out (its transaction commits before the answer is produced), hold the
        answer back for the latency, then send it, or a 503 in its place when the draw failed."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        if decision.latency_seconds > 0:
            await asyncio.sleep(decision.latency_seconds)
        if decision.fail:
            await _unavailable(service)(scope, receive, send)
            return
        for message in held:
            await send(message)
