"""Idempotent execution of mutating calls and the audit ledger.

One write transaction holds everything: the idempotency record, the operation itself and its ledger
entry. The record is claimed first (``INSERT ... ON CONFLICT DO NOTHING`` on the unique
``(service, idempotency_key)``), so a concurrent repeat either waits for the winner and then replays
its stored response (PostgreSQL) or never gets in before the winner committed (SQLite write lock).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, update
from starlette.responses import Response

from order_services.errors import IDEMPOTENCY_KEY_REUSED, ServiceError
from order_services.storage import Store, fetch_one, idempotency_records, insert_ignore, ledger
from order_services.util import isoformat, utcnow

REPLAY_HEADER = "Idempotent-Replayed"


@dataclass
class Operation:
    """What the work function tells the ledger: the order (if it only learns it from the database)
    and details to record."""

    service: str
    operation: str
    idempotency_key: str
    order_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


Work = Callable[[Connection, Operation], tuple[int, dict[str, Any]]]


def write_ledger(
    conn: Connection,
    *,
    order_id: str,
    service: str,
    operation: str,
    status: str,
    idempotency_key: str | None,
    details: dict[str, Any],
) -> None:
    conn.execute(
        ledger.insert().values(
            order_id=order_id,
            service=service,
            operation=operation,
            status=status,
            idempotency_key=idempotency_key,
            created_at=isoformat(utcnow()),
            details=details,
        )
    )


def _replay(record: dict[str, Any], request_fingerprint: str) -> tuple[int, str, bool]:
    if record["fingerprint"] != request_fingerprint:
        raise ServiceError(
            409,
            IDEMPOTENCY_KEY_REUSED,
            "this Idempotency-Key was already used for a different request",
        )
    if not record["status_code"]:
        raise RuntimeError("idempotency record without a stored response")
    return record["status_code"], record["response_body"], True


def execute_idempotent(
    store: Store,
    *,
    service: str,
    operation: str,
    idempotency_key: str,
    request_fingerprint: str,
    order_id: str | None,
    work: Work,
) -> Response:
    """Run ``work`` at most once per ``(service, idempotency_key)`` and answer with its response.

    ``work`` returns ``(status_code, body)`` or raises :class:`ServiceError` (a business error, audited
    as ``failed``; stored under the key only when final, see ``errors.FINAL_ERRORS``). Any other
    exception rolls everything back and nothing is stored.
    """

    def transaction(conn: Connection) -> tuple[int, str, bool]:
        key_filter = {"service": service, "idempotency_key": idempotency_key}
        record = fetch_one(conn, idempotency_records, **key_filter)
        attempts = 0
        while record is None:
            claimed = insert_ignore(
                conn,
                idempotency_records,
                {
                    **key_filter,
                    "fingerprint": request_fingerprint,
                    "status_code": 0,
                    "response_body": "",
                    "created_at": isoformat(utcnow()),
                },
                index_elements=["service", "idempotency_key"],
            )
            if claimed:
                break
            # A concurrent request with this key committed first: replay its answer. (If it released
            # the key again, a state-dependent refusal, the record is gone and the claim is retried.)
            record = fetch_one(conn, idempotency_records, **key_filter)
            attempts += 1
            if record is None and attempts >= 3:
                raise RuntimeError("could not claim the idempotency key")
        if record is not None:
            return _replay(record, request_fingerprint)

        op = Operation(
            service=service, operation=operation, idempotency_key=idempotency_key, order_id=order_id
        )
        try:
            with conn.begin_nested():  # a business error undoes any partial work, but is still recorded
                status_code, body = work(conn, op)
            ledger_status, final = "succeeded", True
            details = dict(op.details)
        except ServiceError as err:
            status_code, body = err.status_code, err.body()
            ledger_status, final = "failed", err.final
            details = {**op.details, "error_type": err.error_type, "message": err.message}
        response_body = json.dumps(body, separators=(",", ":"))
        record_filter = (
            idempotency_records.c.service == service,
            idempotency_records.c.idempotency_key == idempotency_key,
        )
        if ledger_status == "failed" and not final:
            # A state-dependent refusal: release the key so that a retry sees the state it finds then.
            conn.execute(delete(idempotency_records).where(*record_filter))
        else:
            conn.execute(
                update(idempotency_records)
                .where(*record_filter)
                .values(status_code=status_code, response_body=response_body)
            )
        if op.order_id is not None:  # e.g. a 404 for an unknown id has no order to audit
            write_ledger(
                conn,
                order_id=op.order_id,
                service=service,
                operation=operation,
                status=ledger_status,
                idempotency_key=idempotency_key,
                details=details,
            )
        return status_code, response_body, False

    status_code, response_body, replayed = store.run_write(transaction)
    headers = {REPLAY_HEADER: "true"} if replayed else None
    return Response(response_body, status_code=status_code, media_type="application/json", headers=headers)
