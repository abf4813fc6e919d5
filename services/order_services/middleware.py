"""The gate in front of every route: authentication, fault injection, Idempotency-Key presence; then
the body guard: size limit and decodable JSON.

Runs before routing and body validation, so an unauthenticated or fault-injected request does no work
(a fault in phase ``after`` lets the request through and replaces its answer once it is committed).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re

from starlette.datastructures import Headers
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from order_services.errors import (
    AUTHENTICATION,
    IDEMPOTENCY_KEY_MISSING,
    PAYLOAD_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    VALIDATION,
    error_response,
)
from order_services.faults import SERVICES, FaultDecision, FaultRegistry
from order_services.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH


def service_for_path(path: str) -> str | None:
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in SERVICES else None


def _unavailable(service: str) -> ASGIApp:
    return error_response(503, SERVICE_UNAVAILABLE, f"{service} service unavailable (injected fault)")


class GateMiddleware:
    def __init__(
        self, app: ASGIApp, *, api_key: str | None, faults: FaultRegistry, router: Router | None = None
    ) -> None:
        self.app = app
        self._api_key = api_key.encode() if api_key else None
        self._faults = faults
        self._router = router

    def _serves(self, scope: Scope) -> bool:
        """Whether a route serves this method at this path (else routing answers 404/405)."""
        if self._router is None:
            return True
        return any(route.matches(scope)[0] == Match.FULL for route in self._router.routes)

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

        if (
            service is not None
            and method == "POST"
            and not headers.get("idempotency-key", "").strip()
            and self._serves(scope)
        ):
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


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_BRACKETS = re.compile(r"[\[\]{}]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def json_depth(text: str) -> int:
    """Deepest nesting of arrays and objects in JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRING.sub('""', text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def check_json_body(body: bytes) -> str | None:
    """Why ``body`` is not acceptable JSON (a message naming ``body``), or None when it is."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"body: not valid UTF-8 (byte 0x{body[exc.start]:02x} at position {exc.start})"
    if not text.strip():
        return "body: empty; send a JSON object"
    if json_depth(text) > MAX_JSON_DEPTH:
        return f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        return f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError as exc:  # json.JSONDecodeError, NaN/Infinity, an integer literal too long to parse
        return f"body: not valid JSON ({exc})"
    return None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class BodyGuardMiddleware:
    """Bounds the request body to ``MAX_BODY_BYTES`` (413, without reading past the limit) and answers
    422 for a JSON body that cannot be decoded (bad UTF-8, not JSON, nested too deep), so that no
    handler ever sees such a body. Runs inside the gate (after authentication and faults)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self._max_bytes = max_bytes

    def _too_large(self) -> ASGIApp:
        return error_response(
            413, PAYLOAD_TOO_LARGE, f"body: larger than the limit of {self._max_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            await self._too_large()(scope, receive, send)
            return
        if declared in ("", "0") and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client is gone: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_bytes:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)

        if body and scope["method"] in _BODY_METHODS and _is_json(headers.get("content-type")):
            problem = check_json_body(body)
            if problem is not None:
                await error_response(422, VALIDATION, problem)(scope, receive, send)
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
