"""Test support: run ``order-services serve`` as a real subprocess and talk to it over HTTP.

Used by the pytest fixtures in ``tests/conftest.py``; importable from any test folder::

    from order_services.testing import OrderServicesServer, start_order_services

The server runs in its own process group (``start_new_session=True``) and :meth:`OrderServicesServer.stop`
signals exactly that group, never processes by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

API_KEY_ENV = "ORDER_SERVICES_API_KEY"
#: The directory holding the order_services package (services/ of the repository): the subprocess finds
#: the package there even where the distribution is not installed.
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class OrderServicesHTTPError(requests.HTTPError):
    """A 4xx/5xx answer; ``response`` is the ``requests.Response``, ``error_type`` the contract's name."""

    def __init__(self, response: requests.Response) -> None:
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        self.error_type: str | None = error.get("type")
        message = error.get("message") or response.text[:500]
        super().__init__(
            f"{response.status_code} {self.error_type or response.reason} for "
            f"{response.request.method} {response.url}: {message}",
            response=response,
        )


def _json_or_raise(response: requests.Response) -> Any:
    if response.status_code >= 400:
        raise OrderServicesHTTPError(response)
    return response.json()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class OrderServicesServer:
    """A running ``order-services serve`` process (or any reachable instance) and a small HTTP client.

    Attributes: ``base_url`` (``http://host:port``), ``api_key`` (bearer key or None), ``host``, ``port``,
    ``db_path`` (SQLite file path, or the database URL for other backends).

    Every call sends ``Authorization: Bearer <api_key>``. ``get``/``post``/``delete`` return the decoded
    JSON body and raise :class:`OrderServicesHTTPError` on 4xx/5xx; ``get_response``/``post_response``/
    ``delete_response``/``request`` return the raw ``requests.Response`` whatever the status.
    """

    base_url: str
    api_key: str | None
    host: str
    port: int
    db_path: str
    log_path: Path | None = None
    args: list[str] = field(default_factory=list, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    pgid: int | None = field(default=None, repr=False)
    timeout: float = 30.0
    api_key_in_argv: bool = False

    # -- HTTP helpers -------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def headers(self, idempotency_key: str | None = None, api_key: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        key = api_key if api_key is not None else self.api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Any request with the bearer key; ``headers`` are added on top (and may override)."""
        merged = self.headers(idempotency_key)
        merged.update(headers or {})
        kwargs.setdefault("timeout", self.timeout)
        return requests.request(method, self.url(path), json=json, headers=merged, **kwargs)

    def get_response(self, path: str, **kwargs: Any) -> requests.Response:
        """Raw GET (any status)."""
        return self.request("GET", path, **kwargs)

    def post_response(
        self, path: str, json: Any = None, idempotency_key: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """Raw POST (any status). ``idempotency_key=None`` sends no Idempotency-Key header."""
        return self.request("POST", path, json=json, idempotency_key=idempotency_key, **kwargs)

    def delete_response(self, path: str, **kwargs: Any) -> requests.Response:
        """Raw DELETE (any status)."""
        return self.request("DELETE", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET and return the decoded JSON body; raises :class:`OrderServicesHTTPError` on 4xx/5xx."""
        return _json_or_raise(self.get_response(path, **kwargs))

    def post(self, path: str, json: Any = None, idempotency_key: str | None = None, **kwargs: Any) -> Any:
        """POST and return the decoded JSON body; raises :class:`OrderServicesHTTPError` on 4xx/5xx.
        ``idempotency_key=None`` sends no Idempotency-Key header (the services then answer 400);
        use ``new_key()`` for a fresh one."""
        return _json_or_raise(self.post_response(path, json, idempotency_key, **kwargs))

    def delete(self, path: str, **kwargs: Any) -> Any:
        """DELETE and return the decoded JSON body; raises :class:`OrderServicesHTTPError` on 4xx/5xx."""
        return _json_or_raise(self.delete_response(path, **kwargs))

    # -- audit and faults ---------------------------------------------------------------------------
    def audit(self, order_id: str) -> list[dict[str, Any]]:
        """The order's ledger entries, oldest first (``GET /audit/{order_id}`` -> ``entries``)."""
        return self.get(f"/audit/{order_id}")["entries"]

    def set_faults(
        self,
        service: str,
        error_rate: float = 0.0,
        latency_ms: int = 0,
        seed: int | None = None,
        phase: str | None = None,
    ) -> dict[str, Any]:
        """``POST /admin/faults`` for one service; returns the stored config (with the seed used).

        ``phase="after"`` carries each faulted request out and commits it before answering 503 (a lost
        answer); the default (``"before"``) refuses it before doing anything."""
        payload: dict[str, Any] = {"service": service, "error_rate": error_rate, "latency_ms": latency_ms}
        if seed is not None:
            payload["seed"] = seed
        if phase is not None:
            payload["phase"] = phase
        return self.post("/admin/faults", json=payload)  # admin calls need no Idempotency-Key

    def faults(self) -> list[dict[str, Any]]:
        return self.get("/admin/faults")["faults"]

    def received(self) -> dict[str, int]:
        """How many requests reached each service since the server started (``GET /admin/faults``)."""
        return self.get("/admin/faults")["received"]

    def wait_received(self, service: str, count: int, timeout: float = 30.0, interval: float = 0.01) -> int:
        """Wait until ``service`` has received at least ``count`` requests (since start); returns the
        count. The synchronisation point of a race test: the call is in flight at the service."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.received()[service]
            if seen >= count:
                return seen
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{service} received {seen} requests, not {count}, within {timeout}s")
            time.sleep(interval)

    def clear_faults(self) -> None:
        """``DELETE /admin/faults``: clears the faults of every service."""
        self.delete("/admin/faults")

    # -- process control ----------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"order-services exited with code {self.process.returncode} during startup:\n"
                    + self.log_text()[-4000:]
                )
            try:
                if requests.get(self.url("/health"), timeout=2).status_code == 200:
                    return
            except requests.RequestException as exc:
                last_error = exc
            time.sleep(0.05)
        raise TimeoutError(
            f"order-services at {self.base_url} not healthy after {timeout}s ({last_error}):\n"
            + self.log_text()[-4000:]
        )

    def start(self, startup_timeout: float = 30.0) -> OrderServicesServer:
        """(Re)start the subprocess with the same arguments, port and database."""
        if self.is_running():
            raise RuntimeError("order-services is already running")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env.pop(API_KEY_ENV, None)
        args = list(self.args)
        if self.api_key and self.api_key_in_argv:
            args.append(f"--api-key={self.api_key}")  # a value may start with "-"
        elif self.api_key:
            env[API_KEY_ENV] = self.api_key  # via the environment: the key does not show in argv
        log_file = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "order_services.cli", "serve", *args],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(_PACKAGE_ROOT),
                start_new_session=True,
            )
        finally:
            if self.log_path:
                log_file.close()
        self.pgid = os.getpgid(self.process.pid)
        try:
            self.wait_healthy(startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server's process group (by its pgid), SIGKILL it if it does not exit in time."""
        process, pgid = self.process, self.pgid
        if process is None or pgid is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                process.wait(timeout)
        # Anything else left in the group (there should be nothing).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        self.process = None
        self.pgid = None

    def restart(self, startup_timeout: float = 30.0) -> OrderServicesServer:
        self.stop()
        return self.start(startup_timeout)

    def __enter__(self) -> OrderServicesServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def new_key(prefix: str = "key") -> str:
    """A fresh Idempotency-Key."""
    return f"{prefix}-{uuid.uuid4().hex}"


def start_order_services(
    db: str | os.PathLike[str],
    *,
    api_key: str | None = "test-key",
    host: str = "127.0.0.1",
    port: int | None = None,
    initial_stock: int | None = None,
    hold_seconds: float | None = None,
    dispatch_delay: float | None = None,
    log_path: str | os.PathLike[str] | None = None,
    extra_args: list[str] | None = None,
    api_key_in_argv: bool = False,
    startup_timeout: float = 30.0,
) -> OrderServicesServer:
    """Start ``order-services serve`` on ``host`` (a free port unless given) and wait for ``/health``.

    ``db`` is a SQLite file path or a SQLAlchemy URL. Options left at None use the server defaults.
    The API key goes to the server as ``ORDER_SERVICES_API_KEY`` (or as ``--api-key`` with
    ``api_key_in_argv=True``).
    The caller must call ``stop()`` (or use the result as a context manager).
    """
    db_str = os.fspath(db)
    attempts = 1 if port is not None else 3
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else free_port(host)
        args = ["--host", host, "--port", str(chosen), "--db", db_str, "--log-level", "info"]
        for flag, value in (
            ("--initial-stock", initial_stock),
            ("--hold-seconds", hold_seconds),
            ("--dispatch-delay", dispatch_delay),
        ):
            if value is not None:
                args += [flag, str(value)]
        args += list(extra_args or [])
        server = OrderServicesServer(
            base_url=f"http://{host}:{chosen}",
            api_key=api_key,
            host=host,
            port=chosen,
            db_path=db_str,
            log_path=Path(log_path) if log_path else None,
            args=args,
            api_key_in_argv=api_key_in_argv,
        )
        try:
            return server.start(startup_timeout)
        except RuntimeError:
            # Most likely the free port was taken in between; try another one.
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")
