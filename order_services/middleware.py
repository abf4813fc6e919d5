"""The gate in front of every route: authentication, fault injection, Idempotency-Key presence.

Runs before routing and body validation, so an unauthenticated or fault-injected request does no work.
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from order_services.errors import (
    AUTHENTICATION,
    IDEMPOTENCY_KEY_MISSING,
    SERVICE_UNAVAILABLE,
    error_response,
)
from order_services.faults import SERVICES, FaultRegistry


def service_for_path(path: str) -> str | None:
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in SERVICES else None


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

        service = service_for_path(path)
        if service is not None:
            decision = self._faults.decide(service)
            if decision is not None:
                if decision.latency_seconds > 0:
                    await asyncio.sleep(decision.latency_seconds)
                if decision.fail:
                    response = error_response(
                        503, SERVICE_UNAVAILABLE, f"{service} service unavailable (injected fault)"
                    )
                    await response(scope, receive, send)
                    return
            if method == "POST" and not headers.get("idempotency-key", "").strip():
                response = error_response(
                    400, IDEMPOTENCY_KEY_MISSING, "POST requests require an Idempotency-Key header"
                )
                await response(scope, receive, send)
                return

        await self.app(scope, receive, send)
