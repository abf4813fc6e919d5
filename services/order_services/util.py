"""Small helpers: clock, identifiers, canonical JSON."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from datetime import datetime, timezone
from typing import Any


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def isoformat(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds, e.g. ``2025-01-31T12:00:00.123456+00:00``."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def tracking_number() -> str:
    return "TRK" + "".join(secrets.choice("0123456789") for _ in range(12))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(method: str, path: str, payload: Any) -> str:
    """Fingerprint of a request: method, path and the validated body in canonical form."""
    digest = hashlib.sha256()
    digest.update(f"{method.upper()} {path}\n".encode())
    digest.update(canonical_json(payload).encode())
    return digest.hexdigest()
