"""Schemathesis hooks of the schema fuzz test (loaded by the schemathesis process, ``hooks = ...``).

``positive_data_acceptance`` is configured to let schema-valid requests be refused for a business reason
(402 declined card, 422); this check then makes sure such a 422 really is one of the contract's business
refusals and never the request validation disagreeing with the published schema.
"""

from __future__ import annotations

import uuid

import schemathesis
from schemathesis import GenerationMode

#: 422 answers that refuse a well-formed request for what it asks (docs/reference-services.md).
BUSINESS_422 = frozenset({"ItemDiscontinuedError", "RegionNotServicedError", "AddressUndeliverableError"})


@schemathesis.check
def schema_valid_requests_pass_validation(ctx, response, case):
    meta = case.meta
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE or response.status_code != 422:
        return None
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        raise AssertionError(f"422 without the contract's error body: {response.text[:300]}") from None
    if error.get("type") in BUSINESS_422:
        return None
    message = str(error.get("message", ""))
    # A refund above what is left of the charge: well formed, refused for the charge's state.
    if case.path.endswith("/refund") and message.startswith("amount:") and "refundable amount" in message:
        return None
    raise AssertionError(f"a schema-valid request was refused by validation: {error}")


@schemathesis.hook
def before_call(context, case, kwargs):
    """A fresh Idempotency-Key for every schema-valid call. The generator's keys repeat ("0", "00"...),
    so most mutating calls would be refused as key reuse (409) and never reach the services; key reuse
    and replay have their own tests (test_payment.py, test_replay_policy.py). Negative cases keep what
    was generated (changing them would make schemathesis re-judge them)."""
    meta = case.meta
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE or not case.headers:
        return
    for name in list(case.headers):
        value = case.headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and value.strip():
            case.headers[name] = f"fuzz-{uuid.uuid4().hex}"
