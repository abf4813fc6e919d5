"""Storage: SQLAlchemy Core tables and transaction helpers for SQLite and PostgreSQL.

Write transactions are serialized per backend:

* SQLite: a process-wide lock plus ``BEGIN IMMEDIATE`` (WAL journal, so readers never block).
* PostgreSQL: row locks, conditional updates and the unique constraint on idempotency records;
  deadlocks and serialization failures are retried.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

log = logging.getLogger(__name__)

T = TypeVar("T")

metadata = MetaData()

charges = Table(
    "charges",
    metadata,
    Column("payment_id", String(64), primary_key=True),
    Column("order_id", String(255), nullable=False, index=True),
    Column("customer_id", String(255), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("payment_method", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("transaction_ref", String(64), nullable=False),
    Column("processed_at", String(40), nullable=False),
)

refunds = Table(
    "refunds",
    metadata,
    Column("refund_id", String(64), primary_key=True),
    Column("payment_id", String(64), ForeignKey("charges.payment_id"), nullable=False, index=True),
    Column("order_id", String(255), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
)

reservations = Table(
    "reservations",
    metadata,
    Column("reservation_id", String(64), primary_key=True),
    Column("order_id", String(255), nullable=False, index=True),
    Column("region", String(255), nullable=False),
    Column("warehouse_id", String(300), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", String(40), nullable=False),
    Column("expires_ts", Float, nullable=False),
    Column("created_at", String(40), nullable=False),
    Index("ix_reservations_status_expires", "status", "expires_ts"),
)

reservation_lines = Table(
    "reservation_lines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "reservation_id",
        String(64),
        ForeignKey("reservations.reservation_id"),
        nullable=False,
        index=True,
    ),
    Column("line_no", Integer, nullable=False),
    Column("sku", String(255), nullable=False),
    Column("quantity", BigInteger, nullable=False),
)

stock = Table(
    "stock",
    metadata,
    Column("sku", String(255), primary_key=True),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
)

shipments = Table(
    "shipments",
    metadata,
    Column("shipment_id", String(64), primary_key=True),
    Column("order_id", String(255), nullable=False, index=True),
    Column("reservation_id", String(64), nullable=False, index=True),
    Column("tracking_number", String(32), nullable=False),
    Column("carrier", String(64), nullable=False),
    Column("service_level", String(16), nullable=False),
    Column("address", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("estimated_delivery", String(10), nullable=False),
    Column("dispatch_at", String(40), nullable=False),
    Column("dispatch_ts", Float, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("cancelled_at", String(40), nullable=True),
)

emails = Table(
    "emails",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("order_id", String(255), nullable=False, index=True),
    Column("to_address", String(320), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", String(40), nullable=False),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(32), nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    UniqueConstraint("service", "idempotency_key", name="uq_idempotency_service_key"),
    sqlite_autoincrement=True,
)

ledger = Table(
    "audit_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(255), nullable=False, index=True),
    Column("service", String(32), nullable=False),
    Column("operation", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("idempotency_key", Text, nullable=True),
    Column("created_at", String(40), nullable=False),
    Column("details", JSON, nullable=False),
    sqlite_autoincrement=True,
)


def normalize_db_url(db: str) -> str:
    """``--db`` is a SQLAlchemy URL or a path to a SQLite file."""
    if "://" in db:
        if db.startswith("postgres://"):
            db = "postgresql://" + db[len("postgres://") :]
        return db
    path = Path(db).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def redact_db_url(db_url: str) -> str:
    return make_url(db_url).render_as_string(hide_password=True)


_SQLITE_IMMEDIATE = "order_services_begin_immediate"
_RETRYABLE_PG_CODES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


class Store:
    """Owns the engine; hands out read connections and serialized write transactions."""

    def __init__(self, db_url: str) -> None:
        url = make_url(db_url)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                url,
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=10,
                max_overflow=40,
            )
            self._install_sqlite_hooks(self.engine)
            self._write_lock: threading.Lock | None = threading.Lock()
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=40, pool_pre_ping=True)
            self._write_lock = None
        metadata.create_all(self.engine)

    @staticmethod
    def _install_sqlite_hooks(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy (not pysqlite) emit BEGIN, so that writes can use BEGIN IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get(_SQLITE_IMMEDIATE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def dispose(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        lock = self._write_lock if self._write_lock is not None else contextlib.nullcontext()
        with lock, self.engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(**{_SQLITE_IMMEDIATE: True})
            with conn.begin():
                yield conn

    def run_write(self, fn: Callable[[Connection], T], attempts: int = 5) -> T:
        """Run ``fn`` in a write transaction, retrying transient conflicts (deadlocks etc.)."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as conn:
                    return fn(conn)
            except IntegrityError:
                raise
            except DBAPIError as exc:
                if attempt == attempts or not self._is_retryable(exc):
                    raise
                log.warning("transient database conflict (attempt %d), retrying: %s", attempt, exc.orig)
                time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    def _is_retryable(self, exc: DBAPIError) -> bool:
        if self.is_sqlite:
            return "database is locked" in str(exc.orig)
        return getattr(exc.orig, "pgcode", None) in _RETRYABLE_PG_CODES


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any], index_elements: list[str]) -> bool:
    """INSERT that does nothing on a unique conflict. Returns True if a row was inserted.

    On PostgreSQL a conflicting row of a concurrent, uncommitted transaction makes this wait for that
    transaction; if it commits, nothing is inserted. (RETURNING tells whether a row was inserted:
    ``rowcount`` is not reliable once SQLAlchemy adds an implicit RETURNING.)
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).values(**values).on_conflict_do_nothing(index_elements=index_elements)
        return conn.execute(stmt.returning(*table.primary_key.columns)).first() is not None
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=index_elements)
        return conn.execute(stmt.returning(*table.primary_key.columns)).first() is not None
    try:
        with conn.begin_nested():
            conn.execute(table.insert().values(**values))
        return True
    except IntegrityError:
        return False


def fetch_one(conn: Connection, table: Table, **where: Any) -> dict[str, Any] | None:
    stmt = select(table)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    row = conn.execute(stmt).mappings().first()
    return dict(row) if row is not None else None
