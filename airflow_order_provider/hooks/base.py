"""
The base of the four order-service hooks: one HTTP client, one place that turns answers into
results or typed exceptions.

A connection names the service's base URL (host, port, scheme) and its API key (the password
field), sent as ``Authorization: Bearer <key>``. A plain URI connection works as well::

    AIRFLOW_CONN_ORDER_PAYMENT_DEFAULT='http://:KEY@127.0.0.1:8700'

The API key never reaches a log: Airflow masks connection passwords, and this hook logs neither
headers nor request bodies.

Every call has a synchronous form (:meth:`OrderServiceHook.call`, for tasks) and an asynchronous
one (:meth:`OrderServiceHook.async_call`, for triggers in the triggerer's event loop). Both are
``httpx``, the HTTP client Airflow's task runner itself is built on: a task process has it loaded
already, so a step's first call costs no import (``requests`` and ``aiohttp``, which the HTTP
provider's ``HttpHook`` imports, cost a step 0.1-0.3 s of CPU before its first request). Both send
the same request to the same base URL (:class:`ServiceTarget`, read once from the connection) with
the same key and timeout, and both hand the answer to :meth:`OrderServiceHook.service_error`, so an
answer means the same exception whichever path it came by.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

import httpx
from airflow.sdk import BaseHook

from airflow_order_provider.exceptions import (
    SERVICE_ERROR_TYPES,
    BusinessRuleError,
    OrderServiceError,
    ServiceConnectionError,
    ServiceTimeoutError,
    ServiceUnavailableError,
)
from airflow_order_provider.hooks.target import BearerTokenAuth, ServiceTarget
from airflow_order_provider.version_compat import connection_extra

#: Response header with which the services say an answer is a replay of an earlier request.
REPLAY_HEADER = "Idempotent-Replayed"


class ServiceAnswer(dict):
    """
    A service's JSON answer, and whether it was a replay of an earlier request with the same
    idempotency key (``Idempotent-Replayed: true``): a replay proves what happened then, not
    what is true now (the charge may have been refunded since).
    """

    replayed: bool = False


class OrderServiceHook(BaseHook):
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
    default_conn_name = ""
    service: ClassVar[str] = ""
    #: Field of a record's id (``payment_id``...).
    record_id_field: ClassVar[str] = ""
    #: Statuses of a record that is in effect: a charge not fully refunded, stock still held...
    live_statuses: ClassVar[frozenset[str]] = frozenset()
    #: Statuses of a record that was undone (or lapsed): nothing of it is in effect any more.
    undone_statuses: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, conn_id: str | None = None, *, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name
        self._timeout = timeout
        self._async_target: ServiceTarget | None = None

    # -- connection -----------------------------------------------------------------------------

    @cached_property
    def target(self) -> ServiceTarget:
        """The base URL, API key and timeout, read from the connection once per hook."""
        connection = self.get_connection(self.conn_id)
        return ServiceTarget.from_connection(connection, connection.extra_dejson, self._timeout)

    def use_connection(self, connection: Any) -> OrderServiceHook:
        """
        Send to ``connection`` (an Airflow connection object) instead of looking ``conn_id`` up: for
        code that runs outside a task and has read the connection itself, such as the setup command,
        where the task SDK's lookup sees only the environment and the secrets backends, not the
        metadata database (seen on Airflow 3.2.2 and 3.3.2). Returns the hook.
        """
        self.__dict__["target"] = ServiceTarget.from_connection(connection, connection.extra_dejson, self._timeout)
        return self

    @property
    def base_url(self) -> str:
        return self.target.base_url

    @cached_property
    def session(self) -> httpx.Client:
        """The hook's HTTP client, created once and reused (kept-alive) for every call."""
        target = self.target
        return httpx.Client(
            auth=BearerTokenAuth(target.api_key) if target.api_key else None,
            timeout=target.timeout,
            verify=target.verify,
        )

    def get_conn(self) -> httpx.Client:
        return self.session

    @property
    def request_timeout(self) -> float:
        return self.target.timeout

    # -- calls ----------------------------------------------------------------------------------

    def _log_call(self, operation: str, method: str, endpoint: str, idempotency_key: str | None) -> None:
        self.log.info(
            "%s %s: %s %s%s",
            self.service,
            operation,
            method,
            endpoint,
            f" (Idempotency-Key {idempotency_key})" if idempotency_key else "",
        )

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
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        self._log_call(operation, method, endpoint, idempotency_key)
        try:
            response = session.request(method, self.target.url(endpoint), json=json, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise self._timeout_error(self.request_timeout, operation) from exc
        except httpx.TransportError as exc:
            raise self._connection_error(self.base_url, exc, operation) from exc
        return self._answer(response, operation)

    def _answer(self, response: httpx.Response, operation: str) -> ServiceAnswer:
        """The JSON answer of a 2xx response (with its replay flag), or the exception it means."""
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise self.service_error(response.status_code, body, response.reason_phrase, operation=operation)
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

    async def _async_connection_target(self) -> ServiceTarget:
        """
        Read the connection without blocking the event loop, once per hook.

        ``BaseHook.aget_connection`` and ``Connection.aextra_dejson`` mask the connection's secrets
        asynchronously (Airflow 3.3.2+); their synchronous forms would block the triggerer's loop
        on the supervisor. Before 3.3.2 the extras are read in a worker thread
        (:func:`airflow_order_provider.version_compat.connection_extra`).
        """
        if self._async_target is None:
            connection = await self.aget_connection(self.conn_id)
            extra = await connection_extra(connection)
            self._async_target = ServiceTarget.from_connection(connection, extra, self._timeout)
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
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        auth = BearerTokenAuth(target.api_key) if target.api_key else None
        self._log_call(operation, method, endpoint, idempotency_key)
        try:
            async with httpx.AsyncClient(auth=auth, timeout=target.timeout, verify=target.verify) as client:
                response = await client.request(method, target.url(endpoint), json=json, params=params,
                                                headers=headers)
        except httpx.TimeoutException as exc:
            raise self._timeout_error(target.timeout, operation) from exc
        except httpx.TransportError as exc:
            raise self._connection_error(target.base_url, exc, operation) from exc
        return self._answer(response, operation)

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL and the API key against the service's audit endpoint."""
        try:
            self.call("GET", "/audit/connection-test", operation="test connection")
        except OrderServiceError as exc:
            return False, str(exc)
        return True, f"Connected to the {self.service} service at {self.base_url}"
