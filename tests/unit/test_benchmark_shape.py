"""The benchmark's no-op DAG (benchmarks/dags/order_shape_noop.py) keeps the order DAG's shape.

``make bench`` compares ``order_processing`` with ``order_shape_noop`` run for run; the comparison
only means something while both have the same tasks, dependencies and trigger rules, and while the
no-op file costs only what Airflow costs to parse (it must not import the provider).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ORDER_DAG_FILE = REPO / "dags" / "order_processing.py"
NOOP_DAG_FILE = REPO / "benchmarks" / "dags" / "order_shape_noop.py"


def _load_dag(path: Path, module_name: str):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def _shape(dag) -> dict[str, tuple[str, frozenset[str]]]:
    return {task.task_id: (str(task.trigger_rule), frozenset(task.upstream_task_ids)) for task in dag.tasks}


@pytest.fixture(scope="module")
def shapes():
    order = _load_dag(ORDER_DAG_FILE, "bench_shape_order_processing")
    noop = _load_dag(NOOP_DAG_FILE, "bench_shape_order_shape_noop")
    return order, noop


def test_the_noop_dag_has_the_order_dags_task_ids(shapes):
    order, noop = shapes
    assert noop.dag_id == "order_shape_noop"
    assert sorted(noop.task_ids) == sorted(order.task_ids)


def test_the_noop_dag_has_the_order_dags_upstreams_and_trigger_rules(shapes):
    order, noop = shapes
    order_shape, noop_shape = _shape(order), _shape(noop)
    differences = {
        task_id: {"order_processing": order_shape.get(task_id), "order_shape_noop": noop_shape.get(task_id)}
        for task_id in set(order_shape) | set(noop_shape)
        if order_shape.get(task_id) != noop_shape.get(task_id)
    }
    assert not differences, f"benchmarks/dags/order_shape_noop.py drifted from the order DAG: {differences}"


def test_the_noop_dag_is_unscheduled_and_branches_to_the_happy_path(shapes):
    order, noop = shapes
    assert type(noop.timetable) is type(order.timetable)  # schedule=None: NullTimetable
    branch = noop.get_task("check_order_value")
    assert branch.python_callable() == "reserve_inventory"
    # Every task reaches a worker (no EmptyOperator, which the scheduler finishes by itself).
    assert {type(task).__name__ for task in noop.tasks} <= {"PythonOperator", "BranchPythonOperator"}


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_noop_dag_imports_airflow_only():
    # Checked in the source: at run time Airflow's ProvidersManager itself imports the installed
    # provider's get_provider_info and hooks package, whatever DAG file is parsed.
    imported = _imported_modules(NOOP_DAG_FILE)
    assert not {name for name in imported if name.split(".")[0] == "airflow_order_provider"}, imported
    allowed_roots = {"__future__", "airflow", "pendulum"}
    assert {name.split(".")[0] for name in imported} <= allowed_roots, imported


def test_the_noop_dag_skips_the_rollback_the_order_dag_skips_on_completion():
    from airflow_order_provider.order_saga import ORDER_SAGA

    spec = importlib.util.spec_from_file_location("bench_shape_noop_rollback", NOOP_DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert sorted(module._ROLLBACK) == sorted(ORDER_SAGA.rollback_path)
