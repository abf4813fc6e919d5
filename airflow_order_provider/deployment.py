"""
What a deployment needs before its first order: the order pools and the services' connections.

An order's tasks run in the pools of the policy table (:func:`airflow_order_provider.policies.pool_specs`);
a task whose pool does not exist is never scheduled (Airflow only logs "Tasks using non-existent
pool ... will not be scheduled" in the scheduler's log), so a deployment that skipped creating
them would see its orders wait forever. :func:`setup` creates or updates the pools and checks the
connections (``airflow orders setup``, :mod:`airflow_order_provider.cli`); :func:`check` says what
is missing, for the order API's health answer, the Orders page and an order's status
(:mod:`airflow_order_provider.api`).

Runs where Airflow's metadata database is reachable (the CLI, the API server), never in a task.
"""

from __future__ import annotations

from typing import Any

from airflow_order_provider.hooks import SERVICES, hook_class_for
from airflow_order_provider.policies import pool_specs

SETUP_COMMAND = "airflow orders setup"


def connection_ids() -> dict[str, str]:
    """``{service: conn_id}``: the connection each service's hook uses by default."""
    return {service: hook_class_for(service).default_conn_name for service in SERVICES}


def _find_connection(conn_id: str) -> Any | None:
    """
    The connection as Airflow's core reads it (the environment, the secrets backends and the
    metadata database, where ``airflow connections add`` stores it), or None. Outside a task the
    task SDK's lookup (a hook's ``get_connection``) does not read the metadata database (seen on
    3.2.2 and 3.3.2).
    """
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets(conn_id)
    except Exception:  # AirflowNotFoundException (its module differs by release)
        return None


def _connection_exists(conn_id: str) -> bool:
    return _find_connection(conn_id) is not None


def existing_pools(session: Any, names: list[str]) -> dict[str, int]:
    """``{name: slots}`` of those of ``names`` that exist."""
    from airflow.models.pool import Pool
    from sqlalchemy import select

    rows = session.execute(select(Pool.pool, Pool.slots).where(Pool.pool.in_(names)))
    return {name: slots for name, slots in rows}


def missing_pool_message(pool: str) -> str:
    return f"pool {pool!r} does not exist: its tasks are never scheduled (run `{SETUP_COMMAND}`)"


def waiting_on_missing_pools(session: Any, dag_id: str, run_id: str) -> list[str]:
    """One line per task of the run that waits to be scheduled in a pool that does not exist."""
    from airflow.models.pool import Pool
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    rows = session.execute(
        select(TaskInstance.task_id, TaskInstance.pool)
        .where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.state.in_(("scheduled", "up_for_retry")),
            ~TaskInstance.pool.in_(select(Pool.pool)),
        )
        .order_by(TaskInstance.task_id)
    )
    return [
        f"{task_id} waits for pool {pool!r}, which does not exist: it is never scheduled"
        f" (run `{SETUP_COMMAND}`)"
        for task_id, pool in rows
    ]


def check(session: Any) -> dict[str, Any]:
    """
    What the deployment lacks for orders: ``{"ok", "problems", "pools", "connections"}``, where
    ``pools`` is ``{name: {"slots", "expected_slots"}}`` (``slots`` None: missing) and
    ``connections`` is ``{service: {"conn_id", "exists"}}``. A pool with other slots than the
    policy table's is not a problem (a deployment may size it), only a missing one is.
    """
    specs = pool_specs()
    found = existing_pools(session, list(specs))
    pools = {name: {"slots": found.get(name), "expected_slots": spec["slots"]} for name, spec in specs.items()}
    connections = {
        service: {"conn_id": conn_id, "exists": _connection_exists(conn_id)}
        for service, conn_id in connection_ids().items()
    }
    problems = [missing_pool_message(name) for name, pool in pools.items() if pool["slots"] is None]
    problems += [
        f"connection {c['conn_id']!r} of the {service} service does not exist: its steps fail"
        f" (create it, then run `{SETUP_COMMAND}` to check it)"
        for service, c in connections.items()
        if not c["exists"]
    ]
    return {"ok": not problems, "problems": problems, "pools": pools, "connections": connections}


def setup_pools(session: Any) -> list[str]:
    """Create or update the order pools from the policy table; one line per pool, saying what changed."""
    from airflow.models.pool import Pool

    specs = pool_specs()
    before = existing_pools(session, list(specs))
    lines = []
    for name, spec in specs.items():
        Pool.create_or_update_pool(
            name=name,
            slots=spec["slots"],
            description=spec["description"],
            include_deferred=spec["include_deferred"],
            session=session,
        )
        if name not in before:
            lines.append(f"pool {name}: created with {spec['slots']} slots")
        elif before[name] != spec["slots"]:
            lines.append(f"pool {name}: {before[name]} -> {spec['slots']} slots")
        else:
            lines.append(f"pool {name}: {spec['slots']} slots (unchanged)")
    session.flush()
    return lines


def check_connections(test: bool = True) -> tuple[list[str], list[str]]:
    """
    ``(lines, problems)`` for each service's connection: missing, or (``test``) what its hook's
    ``test_connection`` (the service's authenticated audit endpoint) answers.
    """
    lines: list[str] = []
    problems: list[str] = []
    for service, conn_id in connection_ids().items():
        connection = _find_connection(conn_id)
        if connection is None:
            problem = f"connection {conn_id} ({service}): missing"
            lines.append(problem)
            problems.append(problem)
            continue
        if not test:
            lines.append(f"connection {conn_id} ({service}): exists (not tested)")
            continue
        ok, message = hook_class_for(service)(conn_id=conn_id).use_connection(connection).test_connection()
        line = f"connection {conn_id} ({service}): {'ok' if ok else 'FAILED'}: {message}"
        lines.append(line)
        if not ok:
            problems.append(line)
    return lines, problems


def setup(session: Any, *, test_connections: bool = True) -> tuple[list[str], list[str]]:
    """Create or update the pools, check the connections: ``(lines, problems)``."""
    lines = setup_pools(session)
    connection_lines, problems = check_connections(test=test_connections)
    return lines + connection_lines, problems
