"""A throw-away PostgreSQL database for one Airflow deployment (created, dropped, stale ones cleaned)."""

from __future__ import annotations

import os
import re
import secrets

from harness.common import (
    HarnessError,
    _pid_alive,
)


class PostgresDatabase:
    """A uniquely named PostgreSQL database, created on demand and dropped at the end.

    The name is ``<prefix>_<pid>_<random>``; :meth:`drop_stale` removes databases with the same
    prefix whose creating process no longer exists (left over by a killed test run).
    """

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        prefix: str = "order_e2e",
    ) -> None:
        self.host = host or os.environ.get("ORDER_E2E_PG_HOST", "127.0.0.1")
        self.port = int(port or os.environ.get("ORDER_E2E_PG_PORT", "5432"))
        self.user = user or os.environ.get("ORDER_E2E_PG_USER", "postgres")
        self.prefix = prefix
        self.name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
        self.created = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{self.name}"

    def _admin_connection(self):
        import psycopg2

        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", connect_timeout=5
        )
        conn.autocommit = True
        return conn

    def check_reachable(self) -> None:
        try:
            self._admin_connection().close()
        except Exception as exc:
            raise HarnessError(
                f"PostgreSQL is not reachable at {self.host}:{self.port} as user {self.user!r}: {exc}. "
                "The integration tests need a PostgreSQL server with trust auth for that user "
                "(CI starts one in .ci/run)."
            ) from exc

    def drop_stale(self) -> list[str]:
        """Drop databases of this prefix whose owning test process is gone."""
        pattern = re.compile(rf"^{re.escape(self.prefix)}_(\d+)_[0-9a-f]+$")
        dropped = []
        conn = self._admin_connection()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (self.prefix + "_%",))
                names = [row[0] for row in cur.fetchall()]
                for name in names:
                    match = pattern.match(name)
                    if match and not _pid_alive(int(match.group(1))):
                        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                        dropped.append(name)
        finally:
            conn.close()
        return dropped

    def _admin_execute(self, statement: str) -> None:
        conn = self._admin_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def create(self) -> None:
        self._admin_execute(f'CREATE DATABASE "{self.name}"')
        self.created = True

    def drop(self) -> None:
        if not self.created:
            return
        self._admin_execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.created = False


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------
