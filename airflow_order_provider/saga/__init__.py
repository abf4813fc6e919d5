"""
Saga machinery for Airflow: a declarative step table, a builder that turns it into tasks, a
compensation planner, one checkpoint for cancels and the workflow clock, and a typed failure
record. It knows nothing of orders: :mod:`airflow_order_provider.order_saga` is one saga built on it.
"""

from __future__ import annotations

from airflow_order_provider.saga.builder import build_saga
from airflow_order_provider.saga.checkpoint import (
    Checkpoint,
    SagaCancelledError,
    SagaTimeoutError,
    WorkflowClock,
    waited_seconds,
)
from airflow_order_provider.saga.failure import FAILURE_KEY, StepFailure
from airflow_order_provider.saga.planner import PLAN_KEY, PlanCompensationOperator, SagaCancelledOperator
from airflow_order_provider.saga.steps import Saga, SagaStep, SagaTask

__all__ = [
    "FAILURE_KEY",
    "PLAN_KEY",
    "Checkpoint",
    "PlanCompensationOperator",
    "Saga",
    "SagaCancelledError",
    "SagaCancelledOperator",
    "SagaStep",
    "SagaTask",
    "SagaTimeoutError",
    "StepFailure",
    "WorkflowClock",
    "build_saga",
    "waited_seconds",
]
