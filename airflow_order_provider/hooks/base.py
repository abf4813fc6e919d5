"""
The base of the four order-service hooks: one HTTP client, one place that turns answers into
results or typed exceptions.

A connection names the service's base URL (host, port, scheme) and its API key (the password
field), sent as ``Authorization: Bearer <key>``. A plain URI connection works as well::

    AIRFLOW_CONN_ORDER_PAYMENT_DEFAULT='http://:KEY@127.0.0.1:8700'

The API key never reaches a log: Airflow masks connection passwords, and this hook logs neither
headers nor request bodies.

Every call has a synchronous form (:meth:`OrderServiceHook.call`, ``requests``, for tasks) and an
asynchronous one (:meth:`OrderServiceHook.async_call`, ``aiohttp``, for triggers in the triggerer's
event loop). Both send the same request to the same base URL with the same key and timeout, and
both hand the answer to :meth:`OrderServiceHook.service_error`, so an answer means the same
exception whichever path it came by.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import aiohttp
import requests
from airflow.providers.http.hooks.http import HttpHook
from requests.auth import AuthBase

from airflow_order_provider.exceptions import (
    SERVICE_ERROR_TYPES,
    BusinessRuleError,
    OrderServiceError,
    ServiceConnectionError,
    ServiceTimeoutError,
    ServiceUnavailableError,
)
from airflow_order_provider.policies import DEFAULT_REQUEST_TIMEOUT

#: Response header with which the services say an answer is a replay of an earlier request.
REPLAY_HEADER = "Idempotent-Replayed"


class ServiceAnswer(dict):
    """
    A service's JSON answer, and whether it was a replay of an earlier request with the same
    idempotency key (``Idempotent-Replayed: true``): a replay proves what happened then, not
    what is true now (the charge may have been refunded since).
    """

    replayed: bool = False


class BearerTokenAuth(AuthBase):
    """``Authorization: Bearer <api key>``; its repr never shows the key."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerTokenAuth(***)"


@dataclass(frozen=True)
class _AsyncTarget:
    """Where and how the asynchronous path sends requests, read once from the connection."""

    base_url: str
    api_key: str | None
    timeout: float

    def __repr__(self) -> str:
        return f"_AsyncTarget(base_url={self.base_url!r}, api_key=***, timeout={self.timeout!r})"


class OrderServiceHook(HttpHook):
    """
    Base hook for an order service reached over HTTP.

    Subclasses set the four connection attributes and ``service``, and add one method per
    business operation, each a single call to :meth:`call`.

    Every hook also answers the same questions about an order, so that the compensation planner
    and the steps can ask any service what is true now (not what a replayed answer said):
    :meth:`records_for_order`, :meth:`get_record`, :meth:`live_for_order`, :meth:`undo`, with the
    records' id field and their ``live_statuses`` (still in effect) and ``undone_statuses``.

    :param conn_id: connection with the service's base URL and API key.
    :param timeout: request timeout in seconds; defaults to the connection's ``timeout`` field,
        else 10 s.
    """

    conn_name_attr = "conn_id"
    service: ClassVar[str] = ""
    #: Field of a record's id (``payment_id``...).
    record_id_field: ClassVar[str] = ""
    #: Statuses of a record that is in effect: a charge not fully refunded, stock still held...
    live_statuses: ClassVar[frozenset[str]] = frozenset()
    #: Statuses of a record that was undone (or lapsed): nothing of it is in effect any more.
    undone_statuses: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, conn_id: str | None = None, *, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(http_conn_id=conn_id or self.default_conn_name, **kwargs)
        self.conn_id = self.http_conn_id
        self._timeout = timeout
        self._async_target: _AsyncTarget | None = None

    # -- connection -----------------------------------------------------------------------------

    def _configure_session_from_auth(self, session: requests.Session, connection: Any) -> requests.Session:
        session.auth = BearerTokenAuth(connection.password) if connection.password else None
        return session

    @cached_property
    def session(self) -> requests.Session:
        """The hook's HTTP session, created once and reused for every call."""
        return self.get_conn()

    @property
    def request_timeout(self) -> float:
        if self._timeout is not None:
            return self._timeout
        self.session  # noqa: B018 -- reading the connection fills merged_extra
        return float(self.merged_extra.get("timeout") or DEFAULT_REQUEST_TIMEOUT)

    # -- calls ----------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        endpoint: str,
        *,
        operation: str,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """
        Send one request and return the JSON answer, or raise a typed exception.

        :param operation: business name of the call, for messages (``charge``, ``refund``...).
        :param idempotency_key: sent as ``Idempotency-Key``; required by the services on every
            mutating call, so that a retried or repeated call changes nothing twice.
        """
        session = self.session
        url = self.url_from_endpoint(endpoint)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        self.log.info(
            "%s %s: %s %s%s",
            self.service,
            operation,
            method,
            endpoint,
            f" (Idempotency-Key {idempotency_key})" if idempotency_key else "",
        )
        try:
            response = session.request(
                method, url, json=json, params=params, headers=headers, timeout=self.request_timeout
            )
        except requests.Timeout as exc:
            raise self._timeout_error(self.request_timeout, operation) from exc
        except requests.ConnectionError as exc:
            raise self._connection_error(self.base_url, exc, operation) from exc
        self.check_response(response, operation=operation)
        answer = ServiceAnswer(response.json())
        answer.replayed = response.headers.get(REPLAY_HEADER, "").lower() == "true"
        return answer

    # -- what is true now, for an order ---------------------------------------------------------

    def records_for_order(self, order_id: str) -> list[dict[str, Any]]:
        """The order's records at this service, oldest first."""
        raise NotImplementedError(f"the {self.service} hook cannot list an order's records")

    def get_record(self, record_id: str) -> dict[str, Any]:
        """One record, as it is now."""
        raise NotImplementedError(f"the {self.service} hook cannot read a record")

    def live_for_order(self, order_id: str) -> list[dict[str, Any]]:
        """The order's records that are still in effect."""
        return [r for r in self.records_for_order(order_id) if r.get("status") in self.live_statuses]

    def undo(self, record_id: str, *, reason: str, idempotency_key: str) -> dict[str, Any]:
        """Undo one record (refund, release, cancel)."""
        raise NotImplementedError(f"nothing can be undone at the {self.service} service")

    def _timeout_error(self, seconds: float, operation: str) -> ServiceTimeoutError:
        return ServiceTimeoutError(f"no answer within {seconds:g} s", service=self.service, operation=operation)

    def _connection_error(self, base_url: str, exc: Exception, operation: str) -> ServiceConnectionError:
        return ServiceConnectionError(
            f"cannot reach {base_url}: {type(exc).__name__}", service=self.service, operation=operation
        )

    def check_response(self, response: requests.Response, operation: str = "") -> None:  # type: ignore[override]
        """Raise the exception that matches a non-2xx answer (judged by :meth:`service_error`)."""
        if response.status_code < 400:
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        raise self.service_error(response.status_code, body, response.reason, operation=operation)

    def service_error(
        self, status_code: int, body: Any, reason: str | None, *, operation: str = ""
    ) -> OrderServiceError:
        """
        The exception that a non-2xx answer means; the one place answers are judged.

        Shared by the synchronous and the asynchronous path: 5xx and 429 are transient
        (:class:`ServiceUnavailableError`), any other 4xx is the service's own error type from
        ``{"error": {"type", "message"}}`` (a :class:`BusinessRuleError` when the type is unknown).

        :param status_code: the HTTP status, 400 or above.
        :param body: the decoded JSON body, or None when it was not JSON.
        :param reason: the HTTP reason phrase, for answers without a message.
        """
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        error_type = error.get("type") or f"HTTP{status_code}"
        message = error.get("message") or reason or "no message"
        if status_code >= 500 or status_code == 429:
            cls: type[OrderServiceError] = ServiceUnavailableError
        else:
            cls = SERVICE_ERROR_TYPES.get(error_type, BusinessRuleError)
        return cls(
            message,
            service=self.service,
            operation=operation,
            status_code=status_code,
            error_type=error_type,
        )

    # -- asynchronous calls (triggers) ----------------------------------------------------------

    async def _async_connection_target(self) -> _AsyncTarget:
        """
        Read the connection without blocking the event loop, once per hook.

        ``BaseHook.aget_connection`` and ``Connection.aextra_dejson`` mask the connection's secrets
        asynchronously (Airflow 3.3.2+); their synchronous forms would block the triggerer's loop
        on the supervisor. The base URL is built as :meth:`HttpHook._set_base_url` builds it
        (host, or a host that is already a URL; scheme default ``http``; port); SRV lookup is not
        supported on this path.
        """
        if self._async_target is None:
            connection = await self.aget_connection(self.conn_id)
            extra = await connection.aextra_dejson() if connection.extra else {}
            host = connection.host or self.default_host
            schema = connection.schema or "http"
            if "://" in host:
                base_url = host
            else:
                base_url = f"{schema}://{host}" if host else f"{schema}://"
            if connection.port:
                base_url = f"{base_url}:{connection.port}"
            if self._timeout is not None:
                timeout = self._timeout
            else:
                timeout = float(extra.get("timeout") or DEFAULT_REQUEST_TIMEOUT)
            self._async_target = _AsyncTarget(
                base_url=base_url, api_key=connection.password or None, timeout=timeout
            )
        return self._async_target

    async def async_call(
        self,
        method: str,
        endpoint: str,
        *,
        operation: str,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """
        The asynchronous form of :meth:`call`, for triggers: same request, same exceptions.

        :param operation: business name of the call, for messages (``get shipment``...).
        :param idempotency_key: sent as ``Idempotency-Key``; a triggerer restart may send the
            same request twice, so every mutating call needs one.
        """
        target = await self._async_connection_target()
        url = f"{target.base_url.rstrip('/')}/{endpoint.lstrip('/')}"
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if target.api_key:
            headers["Authorization"] = f"Bearer {target.api_key}"
        self.log.info(
            "%s %s: %s %s%s",
            self.service,
            operation,
            method,
            endpoint,
            f" (Idempotency-Key {idempotency_key})" if idempotency_key else "",
        )
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=target.timeout)) as session:
                async with session.request(method, url, json=json, params=params, headers=headers) as response:
                    status_code, reason = response.status, response.reason
                    raw = await response.read()
        # aiohttp's read timeouts are also ClientConnectionErrors: test for a timeout first.
        except asyncio.TimeoutError as exc:
            raise self._timeout_error(target.timeout, operation) from exc
        except aiohttp.ClientConnectionError as exc:
            raise self._connection_error(target.base_url, exc, operation) from exc
        if status_code >= 400:
            try:
                body = jsonlib.loads(raw)
            except ValueError:
                body = None
            raise self.service_error(status_code, body, reason, operation=operation)
        return jsonlib.loads(raw)

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL and the API key against the service's audit endpoint."""
        try:
            self.call("GET", "/audit/connection-test", operation="test connection")
        except OrderServiceError as exc:
            return False, str(exc)
        return True, f"Connected to the {self.service} service at {self.base_url}"
