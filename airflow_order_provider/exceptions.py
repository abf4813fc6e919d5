"""
What can go wrong when the order process calls a service, in business words.

Two families, because the retry policies treat them differently:

* :class:`TransientServiceError` -- the service could not answer (5xx, 429, connection refused,
  a request timeout). Another try may well succeed.
* :class:`BusinessRuleError` -- the service answered and said no (a declined card, a discontinued
  item, an undeliverable address). Its subclasses carry the service's own error names; the
  retry policy table (:mod:`airflow_order_provider.policies`) says which of them no retry can fix.

Every exception keeps the service name, the operation, the HTTP status and the service's error
type, so a task log says exactly what happened.
"""

from __future__ import annotations

from airflow_order_provider.saga.checkpoint import SagaCancelledError, SagaTimeoutError
from airflow_order_provider.version_compat import AirflowException, AirflowFailException


class InvalidOrderError(AirflowFailException):
    """The order itself is malformed; raised before any service is called, never retried."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid order: " + "; ".join(problems))


class StepFailedError(AirflowFailException):
    """A step failed for good and a person chose to compensate the order."""


class StepAbandonedError(AirflowFailException):
    """A step failed for good and a person chose to abandon the order: nothing is undone."""


class WorkflowTimeoutError(SagaTimeoutError):
    """The order ran past its workflow timeout: the completed steps are compensated."""


class OrderCancelledError(SagaCancelledError):
    """The order was cancelled (the cancel signal): the completed steps are compensated."""


class OrderRejectedError(AirflowFailException):
    """A high-value order was rejected by its approver, or not approved in time."""


class OrderAlreadyUndoneError(AirflowFailException):
    """
    What an earlier step did for the order is no longer in effect (its charge was refunded, its
    stock released, its shipment cancelled): the order was cancelled before, by an earlier run or
    by hand. Nothing more is done for it; place it again under a new order id.
    """


class CompensationImpossibleError(AirflowFailException):
    """A step can no longer be undone (the carrier already has the parcel): settle it by hand."""


class OrderServiceError(AirflowException):
    """A call to one of the order services did not succeed."""

    def __init__(
        self,
        message: str,
        *,
        service: str = "",
        operation: str = "",
        status_code: int | None = None,
        error_type: str | None = None,
    ) -> None:
        self.service = service
        self.operation = operation
        self.status_code = status_code
        self.error_type = error_type or type(self).__name__
        self.message = message
        where = " ".join(part for part in (service, operation) if part)
        status = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"{where}: {self.error_type}: {message}{status}" if where else message)


# --- transient: another try may succeed -------------------------------------------------------


class TransientServiceError(OrderServiceError):
    """The service could not answer this time (5xx, 429, connection failure, request timeout)."""


class ServiceUnavailableError(TransientServiceError):
    """The service answered 503 or another 5xx."""


class ServiceConnectionError(TransientServiceError):
    """The service could not be reached (connection refused, reset, DNS)."""


class ServiceTimeoutError(TransientServiceError):
    """The service did not answer within the request timeout."""


# --- the service answered and said no ----------------------------------------------------------


class BusinessRuleError(OrderServiceError):
    """The service refused the request (a 4xx answer)."""


class ServiceAuthenticationError(BusinessRuleError):
    """The service refused the API key of the connection (401)."""


class ServiceValidationError(BusinessRuleError):
    """The service rejected the request body (422 ValidationError)."""


class IdempotencyKeyReusedError(BusinessRuleError):
    """The same idempotency key was sent with a different request body (409)."""


class InvalidStateError(BusinessRuleError):
    """The object is in a state that forbids the operation, e.g. cancelling a dispatched shipment."""


class NotFoundError(BusinessRuleError):
    """The object the request names does not exist (404)."""


class PaymentNotFoundError(NotFoundError):
    """No such charge."""


class ReservationNotFoundError(NotFoundError):
    """No such inventory reservation."""


class ShipmentNotFoundError(NotFoundError):
    """No such shipment."""


class PaymentError(BusinessRuleError):
    """The payment service refused the charge (402)."""


class PaymentDeclinedError(PaymentError):
    """The card issuer declined the charge."""


class FraudDetectedError(PaymentError):
    """The charge was blocked as fraudulent."""


class InsufficientFundsError(PaymentError):
    """The card has insufficient funds."""


class CardExpiredError(PaymentError):
    """The card has expired."""


class InventoryError(BusinessRuleError):
    """The inventory service refused the reservation."""


class ItemDiscontinuedError(InventoryError):
    """An item of the order is discontinued."""


class RegionNotServicedError(InventoryError):
    """No warehouse serves the order's shipping region."""


class OutOfStockError(InventoryError):
    """Not enough stock left for an item; stock may be replenished, so this one is retryable."""


class ShippingError(BusinessRuleError):
    """The shipping service refused the shipment."""


class AddressUndeliverableError(ShippingError):
    """The carrier cannot deliver to the shipping address."""


def _all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


#: The services' ``error.type`` names mapped to our exception classes.
SERVICE_ERROR_TYPES: dict[str, type[OrderServiceError]] = {
    cls.__name__: cls for cls in _all_subclasses(OrderServiceError)
}
# The services' names that differ from ours.
SERVICE_ERROR_TYPES["ValidationError"] = ServiceValidationError
SERVICE_ERROR_TYPES["AuthenticationError"] = ServiceAuthenticationError
