"""
A saga as a table: its forward steps in order, each with its compensation.

:class:`Saga` is the one declarative home of a saga's shape. The DAG's tasks and their wiring
(:mod:`airflow_order_provider.saga.builder`), the compensation planner, the workflow clock's
exclusions, the alert texts and the status queries all derive from it, so a step is added or
renamed in one place. Nothing here knows what the saga is about: the order's table is
:mod:`airflow_order_provider.order_saga`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

#: Builds a task: called as ``factory(task_id=..., **kwargs)`` inside the DAG being built.
TaskFactory = Callable[..., Any]


class SagaAware:
    """
    Marks a task class that takes the saga's table from the builder (``saga=``), so that it can
    read what it needs from it (the start task, the steps before it) instead of having it spelled
    out. Plain tasks (a ``PythonOperator``) are built without it.
    """


def takes_saga(factory: Any) -> bool:
    return isinstance(factory, type) and issubclass(factory, SagaAware)


@dataclass(frozen=True)
class SagaStep:
    """
    One forward step of a saga.

    :param task_id: the step's task id.
    :param forward: builds the step's task.
    :param status: the business status shown while the step is the furthest one reached
        (``processing_payment``).
    :param compensation: task id of the step's compensation; None when there is nothing to undo
        (an approval, a wait, a notification).
    :param compensate: builds the compensation task.
    :param service: the outside service the step changes, if any: the planner asks it what is
        live when the step has no proven answer.
    :param result_fields: the fields of the step's result that the saga's result and queries show.
    :param waits: the step waits for a person or an outside party (an approval, a pickup): its wait
        (``waited_seconds`` in its result or failure record) is left out of the workflow clock.
    :param rolls_back: its failure rolls the saga back (False: best effort, like a confirmation
        email after the goods left; the saga completes and operations are alerted).
    :param requires: earlier steps whose effect must still be live when this step runs (no
        shipping over a refunded charge).
    :param undo_after: later steps whose compensation must be done, or proven unnecessary, before
        this step's compensation runs (a business rule, not the reverse order alone: money goes back
        only once the goods can no longer leave). A compensation not named here does not wait: a
        stuck stock release does not hold a refund back.
    :param rolls_forward: the step has a point of no return (the carrier has the parcel): when its
        compensation finds it completed for real, the saga is finished instead of undone, by the
        saga's ``roll_forward`` task, and no other compensation runs.
    :param gate: builds a branch task placed before this step that decides whether the step runs
        (an approval only above a threshold); it is given ``step_task_id`` and ``next_task_id``.
    :param gate_task_id: the gate's task id.
    :param kwargs: more keyword arguments for ``forward``.
    """

    task_id: str
    forward: TaskFactory
    status: str
    compensation: str | None = None
    compensate: TaskFactory | None = None
    service: str | None = None
    result_fields: tuple[str, ...] = ()
    waits: bool = False
    rolls_back: bool = True
    requires: tuple[str, ...] = ()
    undo_after: tuple[str, ...] = ()
    rolls_forward: bool = False
    gate: TaskFactory | None = None
    gate_task_id: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.compensation is None) != (self.compensate is None):
            raise ValueError(f"{self.task_id}: give both compensation and compensate, or neither")
        if (self.gate is None) != (self.gate_task_id is None):
            raise ValueError(f"{self.task_id}: give both gate and gate_task_id, or neither")


@dataclass(frozen=True)
class SagaTask:
    """A task of the saga that is not a step: its start, its end, its planner."""

    task_id: str
    factory: TaskFactory
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Saga:
    """
    A saga: a start task, forward steps in order, and the tasks that end it either way.

    :param name: what one run of it is (``order``), for messages.
    :param start: validates the input and pushes it (the saga's input for every step).
    :param steps: the forward steps, in order.
    :param complete: records the completed saga; runs once the last step (and the best-effort
        steps) are done.
    :param plan: the compensation planner (a branch task) run when a step fails for good.
    :param cancelled: records the rolled-back saga once its compensations are done.
    :param roll_forward: finishes the saga instead of undoing it when the compensation of a step
        with a point of no return (``rolls_forward``) finds the step completed for real.
    """

    name: str
    start: SagaTask
    steps: tuple[SagaStep, ...]
    complete: SagaTask
    plan: SagaTask
    cancelled: SagaTask
    id_field: str = "id"
    roll_forward: SagaTask | None = None

    def __post_init__(self) -> None:
        ids = self.task_ids
        duplicates = sorted({t for t in ids if ids.count(t) > 1})
        if duplicates:
            raise ValueError(f"{self.name} saga: task ids used twice: {duplicates}")
        for step in self.steps:
            unknown = [r for r in step.requires if r not in self.step_ids]
            if unknown:
                raise ValueError(f"{step.task_id} requires unknown step(s) {unknown}")
            for other in step.undo_after:
                if other not in self.step_ids or not self.step(other).compensation:
                    raise ValueError(f"{step.task_id}: undo_after names {other!r}, not a step with a compensation")
                if self.step_ids.index(other) <= self.step_ids.index(step.task_id):
                    raise ValueError(f"{step.task_id}: undo_after names {other!r}, which is not a later step")
            if step.compensation and not step.rolls_back:
                raise ValueError(f"{step.task_id}: a best-effort step has no compensation")
        rolling = [step for step in self.steps if step.rolls_forward]
        if rolling and self.roll_forward is None:
            raise ValueError(f"{self.name} saga: {rolling[0].task_id} rolls forward, but the saga has no roll_forward task")
        for step in rolling:
            if not step.compensation:
                raise ValueError(f"{step.task_id}: a step that rolls forward needs a compensation that finds out")
            # Rolling forward keeps what the earlier steps did: none of their undos may run first.
            for earlier in self.steps_before(step.task_id):
                if earlier.compensation and step.task_id not in earlier.undo_after:
                    raise ValueError(
                        f"{earlier.task_id}: its compensation must wait for {step.compensation} (undo_after):"
                        f" {step.task_id} may roll the {self.name} forward"
                    )

    # -- derived views: everything else reads the saga's shape from these -------------------------

    @property
    def step_ids(self) -> tuple[str, ...]:
        return tuple(step.task_id for step in self.steps)

    def step(self, task_id: str) -> SagaStep:
        for step in self.steps:
            if step.task_id == task_id:
                return step
        raise KeyError(f"{task_id} is not a step of the {self.name} saga")

    @cached_property
    def rollback_steps(self) -> tuple[SagaStep, ...]:
        """The steps whose failure rolls the saga back (the planner's upstream)."""
        return tuple(step for step in self.steps if step.rolls_back)

    @property
    def compensations(self) -> dict[str, str | None]:
        """``{step: its compensation or None}`` of the rollback steps, in forward order."""
        return {step.task_id: step.compensation for step in self.rollback_steps}

    @property
    def compensation_ids(self) -> tuple[str, ...]:
        """The compensation tasks in the order they run: latest step first."""
        return tuple(step.compensation for step in reversed(self.steps) if step.compensation)

    def compensation_waits_for(self, compensation: str) -> tuple[str, ...]:
        """The compensations that must be done (or proven unnecessary) before ``compensation`` runs."""
        step = next(s for s in self.steps if s.compensation == compensation)
        return tuple(str(self.step(other).compensation) for other in step.undo_after)

    @property
    def rolls_forward_ids(self) -> tuple[str, ...]:
        """The compensations that may find their step past its point of no return."""
        return tuple(str(step.compensation) for step in self.steps if step.rolls_forward)

    @property
    def rollback_path(self) -> tuple[str, ...]:
        """
        Every task of the rollback: the planner, the compensations, the cancelled record, and the
        roll forward (the other way a rollback can end).
        """
        ends = (self.cancelled.task_id, *((self.roll_forward.task_id,) if self.roll_forward else ()))
        return (self.plan.task_id, *self.compensation_ids, *ends)

    @property
    def forward_path(self) -> tuple[str, ...]:
        """Every forward task in the order a run reaches them: start, gates and steps, complete."""
        path: list[str] = [self.start.task_id]
        for step in self.steps:
            if step.gate_task_id:
                path.append(step.gate_task_id)
            path.append(step.task_id)
        return (*path, self.complete.task_id)

    @property
    def task_ids(self) -> list[str]:
        return [*self.forward_path, *self.rollback_path]

    @property
    def statuses(self) -> dict[str, str]:
        """``{step: business status while it runs}``, in forward order."""
        return {step.task_id: step.status for step in self.steps}

    def steps_before(self, task_id: str) -> tuple[SagaStep, ...]:
        ids = self.step_ids
        return self.steps[: ids.index(task_id)]
