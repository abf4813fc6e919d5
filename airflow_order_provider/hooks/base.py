"""
The base of the four order-service hooks: one HTTP client, one place that turns answers into
results or typed exceptions.

A connection names the service's base URL (host, port, scheme) and its API key (the password
field), sent as ``Authorization: Bearer <key>``. A plain URI connection works as well::

    AIRFLOW_CONN_ORDER_PAYMENT_DEFAULT='http://:KEY@127.0.0.1:8700'

The API key never reaches a log: Airflow masks connection passwords, and this hook logs neither
headers nor request bodies.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

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


class BearerTokenAuth(AuthBase):
    """``Authorization: Bearer <api key>``; its repr never shows the key."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerTokenAuth(***)"


class OrderServiceHook(HttpHook):
    """
    Base hook for an order service reached over HTTP.

    Subclasses set the four connection attributes and ``service``, and add one method per
    business operation, each a single call to :meth:`call`.

    :param conn_id: connection with the service's base URL and API key.
    :param timeout: request timeout in seconds; defaults to the connection's ``timeout`` field,
        else 10 s.
    """

    conn_name_attr = "conn_id"
    service: ClassVar[str] = ""

    def __init__(self, conn_id: str | None = None, *, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(http_conn_id=conn_id or self.default_conn_name, **kwargs)
        self.conn_id = self.http_conn_id
        self._timeout = timeout

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
            raise ServiceTimeoutError(
                f"no answer within {self.request_timeout:g} s", service=self.service, operation=operation
            ) from exc
        except requests.ConnectionError as exc:
            raise ServiceConnectionError(
                f"cannot reach {self.base_url}: {type(exc).__name__}",
                service=self.service,
                operation=operation,
            ) from exc
        self.check_response(response, operation=operation)
        return response.json()

    def check_response(self, response: requests.Response, operation: str = "") -> None:  # type: ignore[override]
        """Raise the exception that matches a non-2xx answer; the one place answers are judged."""
        if response.status_code < 400:
            return
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        error_type = error.get("type") or f"HTTP{response.status_code}"
        message = error.get("message") or response.reason or "no message"
        if response.status_code >= 500 or response.status_code == 429:
            cls: type[OrderServiceError] = ServiceUnavailableError
        else:
            cls = SERVICE_ERROR_TYPES.get(error_type, BusinessRuleError)
        raise cls(
            message,
            service=self.service,
            operation=operation,
            status_code=response.status_code,
            error_type=error_type,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL and the API key against the service's audit endpoint."""
        try:
            self.call("GET", "/audit/connection-test", operation="test connection")
        except OrderServiceError as exc:
            return False, str(exc)
        return True, f"Connected to the {self.service} service at {self.base_url}"
