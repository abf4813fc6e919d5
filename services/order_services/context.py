"""Per-app state shared by the routers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Header, Path, Request
from starlette.responses import Response

from order_services.faults import FaultRegistry
from order_services.idempotency import Work, execute_idempotent
from order_services.models import NO_NUL, NOT_BLANK
from order_services.storage import Store
from order_services.util import fingerprint

#: The header every mutating call of the four services requires (the gate answers 400 without it).
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        pattern=NOT_BLANK,
        description="Makes the call safe to repeat: the same key and body replay the first answer.",
    ),
]


#: An id (or SKU, order id) in the path: any text but U+0000 (an unknown one answers 404).
PathId = Annotated[str, Path(pattern=NO_NUL)]


@dataclass(frozen=True)
class Settings:
    initial_stock: int = 1000
    hold_seconds: float = 86400.0
    dispatch_delay: float = 5.0


@dataclass
class ServiceContext:
    store: Store
    faults: FaultRegistry
    settings: Settings

    def execute(
        self,
        request: Request,
        *,
        idempotency_key: str,
        service: str,
        operation: str,
        payload: dict,
        order_id: str | None,
        work: Work,
    ) -> Response:
        """Run a mutating call idempotently under the request's Idempotency-Key."""
        # The gate middleware already answered 400 when the header is missing or blank.
        key = idempotency_key.strip()
        return execute_idempotent(
            self.store,
            service=service,
            operation=operation,
            idempotency_key=key,
            request_fingerprint=fingerprint(request.method, request.url.path, payload),
            order_id=order_id,
            work=work,
        )


def get_context(request: Request) -> ServiceContext:
    return request.app.state.order_services
