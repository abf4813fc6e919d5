"""The shared hook behaviour: against the real reference services on loopback where the services' state is
the point, against the services answered in process (``service_double``) where the provider's handling is."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest

from airflow_order_provider.exceptions import (
    ServiceAuthenticationError,
    ServiceConnectionError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    ServiceValidationError,
)
from airflow_order_provider.hooks.base import BearerTokenAuth
from airflow_order_provider.hooks.payment import PaymentHook
from harness.orders import ledger

CHARGE = {"customer_id": "cus-42", "amount": 1000, "currency": "USD", "payment_method": "pm_card_ok"}


def test_hook_sends_the_api_key_as_bearer_token(service_connections, order_id):
    charge = PaymentHook().charge(order_id=order_id, idempotency_key=f"{order_id}:t", **CHARGE)
    assert charge["status"] == "succeeded"


def test_wrong_api_key_is_an_authentication_error(order_services, monkeypatch, order_id):
    monkeypatch.setenv("AIRFLOW_CONN_WRONG_KEY", f"http://:not-the-key@{order_services.host}:{order_services.port}")
    with pytest.raises(ServiceAuthenticationError) as raised:
        PaymentHook(conn_id="wrong_key").charge(order_id=order_id, idempotency_key=f"{order_id}:t", **CHARGE)
    assert raised.value.status_code == 401
    assert order_services.audit(order_id) == []


def test_the_api_key_never_reaches_the_log(service_double, order_id, caplog):
    service_double.answer = lambda request: httpx.Response(
        201, json={"payment_id": "pay_1", "order_id": order_id, "status": "succeeded"}
    )
    caplog.set_level(logging.DEBUG)
    hook = PaymentHook()
    hook.charge(order_id=order_id, idempotency_key=f"{order_id}:t", **CHARGE)
    assert service_double.requests[0].headers["Authorization"] == f"Bearer {service_double.API_KEY}"
    assert service_double.API_KEY not in caplog.text
    assert service_double.API_KEY not in repr(hook.session.auth)
    assert repr(BearerTokenAuth("s3cret")) == "BearerTokenAuth(***)"


def test_session_is_created_once(service_double):
    hook = PaymentHook()
    assert hook.session is hook.session


def test_request_timeout_comes_from_the_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ORDER_PAYMENT_DEFAULT", "http://:key@services.test:8700?timeout=2.5")
    assert PaymentHook().request_timeout == 2.5
    assert PaymentHook(timeout=4).request_timeout == 4


def test_503_is_transient(service_connections, order_id):
    service_connections.set_faults("payment", error_rate=1.0, seed=1)
    with pytest.raises(ServiceUnavailableError) as raised:
        PaymentHook().charge(order_id=order_id, idempotency_key=f"{order_id}:t", **CHARGE)
    assert raised.value.status_code == 503
    assert service_connections.audit(order_id) == []


def test_a_slow_answer_is_a_timeout(service_double):
    def too_slow(request: httpx.Request) -> httpx.Response:
        assert request.extensions["timeout"]["read"] == 0.3  # the request waits as long as the hook says
        raise httpx.ReadTimeout("no answer", request=request)

    service_double.answer = too_slow
    with pytest.raises(ServiceTimeoutError, match="no answer within 0.3 s"):
        PaymentHook(timeout=0.3).get_charge("pay_missing")
    assert [r.url.path for r in service_double.requests] == ["/payment/charges/pay_missing"]


def test_nothing_listening_is_a_connection_error(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_ORDER_PAYMENT_DEFAULT", f"http://:key@127.0.0.1:{port}")
    with pytest.raises(ServiceConnectionError, match="cannot reach"):
        PaymentHook().get_charge("pay_x")


def test_a_body_the_service_rejects_names_the_field(service_connections, order_id):
    with pytest.raises(ServiceValidationError, match="amount"):
        PaymentHook().charge(
            order_id=order_id, idempotency_key=f"{order_id}:t", **{**CHARGE, "amount": -5}
        )


def test_connection_test_checks_url_and_key(service_connections, monkeypatch):
    ok, message = PaymentHook().test_connection()
    assert ok, message
    monkeypatch.setenv(
        "AIRFLOW_CONN_ORDER_PAYMENT_DEFAULT",
        f"http://:wrong@{service_connections.host}:{service_connections.port}",
    )
    ok, message = PaymentHook().test_connection()
    assert not ok and "AuthenticationError" in message


def test_a_plain_http_service_gets_a_client_that_loads_no_ca_bundle(service_connections, order_id):
    """
    Loading the CA bundle was about 50 ms of CPU in every step (the largest part of its run): a
    client of an http:// service never speaks TLS, so it gets a context that trusts no one instead.
    """
    import ssl

    hook = PaymentHook()
    context = hook.target.verify
    assert isinstance(context, ssl.SSLContext)
    assert context.cert_store_stats()["x509_ca"] == 0
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert hook.session._transport._pool._ssl_context is context  # what the client was built with
    assert PaymentHook().target.verify is context  # one per process
    charge = hook.charge(order_id=order_id, idempotency_key=f"{order_id}:t", **CHARGE)
    assert charge["status"] == "succeeded"
    assert ledger(service_connections, order_id) == [("payment", "charge", "succeeded")]


def test_an_https_service_keeps_httpx_certificate_verification(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ORDER_PAYMENT_DEFAULT", "https://:key@payments.example.com")
    hook = PaymentHook()
    assert hook.base_url == "https://payments.example.com"  # the URI's scheme, not http
    assert hook.target.verify is True
    context = hook.session._transport._pool._ssl_context
    assert context.cert_store_stats()["x509_ca"] > 0
