"""Where and how a hook reaches its service: base URL, API key, timeout and TLS, read once from the connection."""

from __future__ import annotations

import ssl
from collections.abc import Generator
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx

#: Request timeout of one HTTP call, unless the connection's ``timeout`` field says otherwise.
DEFAULT_REQUEST_TIMEOUT = 10.0


class BearerTokenAuth(httpx.Auth):
    """``Authorization: Bearer <api key>``; its repr never shows the key."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerTokenAuth(***)"


@cache
def _trusts_no_one() -> ssl.SSLContext:
    """A client TLS context with no CA loaded: it verifies certificates, and none verifies."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


@dataclass(frozen=True)
class ServiceTarget:
    """
    Where and how a hook sends its requests, read once from the connection: the base URL (the
    host, or a host that is already a URL; the scheme from the schema field, else an ``https://``
    URI's own, else ``http``; the port), the API key and the
    request timeout (the connection's ``timeout`` extra, else 10 s).
    """

    base_url: str
    api_key: str | None
    timeout: float

    @classmethod
    def from_connection(cls, connection: Any, extra: dict[str, Any], timeout: float | None) -> ServiceTarget:
        host = connection.host or ""
        # The scheme: the connection's schema field, else an http(s) URI's own scheme (its conn type).
        schema = connection.schema or (connection.conn_type if connection.conn_type in ("http", "https") else "http")
        base_url = host if "://" in host else f"{schema}://{host}"
        if connection.port:
            base_url = f"{base_url}:{connection.port}"
        if timeout is None:
            timeout = float(extra.get("timeout") or DEFAULT_REQUEST_TIMEOUT)
        return cls(base_url=base_url.rstrip("/"), api_key=connection.password or None, timeout=timeout)

    def url(self, endpoint: str) -> str:
        return f"{self.base_url}/{endpoint.lstrip('/')}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """
        The clients' ``verify``: httpx's default (the system's or certifi's CAs) for an ``https``
        service; for a plain ``http`` one, a TLS context that trusts no one, so that a client that
        will never speak TLS does not load the CA bundle (about 50 ms of CPU, the largest part of a
        step's run here), and any TLS it were asked to speak would fail verification.
        """
        if self.base_url.lower().startswith("https://"):
            return True
        return _trusts_no_one()

    def __repr__(self) -> str:
        return f"ServiceTarget(base_url={self.base_url!r}, api_key=***, timeout={self.timeout!r})"
