"""
What a distributed deployment of the order provider runs, in one place.

The compose file (``docker-compose.yaml``) and the distributed end-to-end test
(``tests/integration/test_distributed_e2e.py``, through :class:`~harness.celery.CeleryDeployment`)
run the same components with the same commands, the same Celery settings and the same queues;
``tests/unit/test_compose.py`` holds the compose file to this module. The queues come from the
policy table (:mod:`airflow_order_provider.policies`): one per service, plus Airflow's default queue
for the tasks that belong to no service (validate_order, plan_compensation, complete_order...).

Kept free of Airflow imports beyond the policy table, so that it loads anywhere.
"""

from __future__ import annotations

from airflow_order_provider.policies import BUILTIN_POLICIES, policy_for

#: ``[operators] default_queue``: where tasks without a service's queue go.
DEFAULT_QUEUE = "default"

#: ``airflow <args>`` of each Airflow component besides the Celery workers (and ``db migrate``).
AIRFLOW_COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
}
#: Flags the local harness adds to those commands: its processes share one log folder, so no
#: component serves logs (their log servers would listen on all interfaces). Containers do serve
#: them: the API server fetches a running task's log from its worker.
LOCAL_ONLY_FLAGS = frozenset({"--skip-serve-logs"})

#: Schedulers running at once (scheduler HA on PostgreSQL): compose replicas and the test's count.
SCHEDULERS = 2

#: Settings every Airflow component of a distributed deployment has, besides deploy/airflow-order.env.
#: Values that depend on where things run (hosts, ports, database names) are left to the deployment;
#: the keys must be there, and these values exactly.
CELERY_SETTINGS: dict[str, str | None] = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CELERY__BROKER_URL": None,  # redis://...
    "AIRFLOW__CELERY__RESULT_BACKEND": None,  # db+postgresql://... (the metadata database)
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": None,
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": None,
    "AIRFLOW__API_AUTH__JWT_SECRET": None,  # one secret for every component (task tokens)
    "AIRFLOW__CORE__FERNET_KEY": None,
    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
    # Scheduler HA: a scheduler that stops heartbeating is declared dead after 30 s and the others
    # adopt its queued and running tasks; they look every 30 s (Airflow's default is 300 s).
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": None,
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": None,
}
BROKER_SCHEME = "redis://"
RESULT_BACKEND_SCHEME = "db+postgresql://"


def service_queues() -> dict[str, str]:
    """``{service: Celery queue}`` from the policy table (with this deployment's overrides)."""
    return {service: policy_for(service).queue for service in BUILTIN_POLICIES}


def all_queues() -> set[str]:
    return set(service_queues().values()) | {DEFAULT_QUEUE}


def worker_command(queues: list[str]) -> list[str]:
    """``airflow <args>`` of a Celery worker consuming ``queues``."""
    return ["celery", "worker", "--queues", ",".join(queues)]


def compose_workers() -> dict[str, list[str]]:
    """The compose file's workers: one service per queue, each also taking the default queue's tasks."""
    return {f"airflow-worker-{queue}": [queue, DEFAULT_QUEUE] for queue in service_queues().values()}


def e2e_workers() -> dict[str, list[str]]:
    """
    The distributed test's two workers: each consumes some service queues, plus the default queue.

    Both take payments, so that a payment whose worker is killed is retried on the other one.
    """
    queues = service_queues()
    return {
        "worker-a": [queues["payment"], queues["inventory"], DEFAULT_QUEUE],
        "worker-b": [queues["payment"], queues["shipping"], queues["notification"], DEFAULT_QUEUE],
    }


def strip_local_flags(argv: list[str]) -> list[str]:
    return [arg for arg in argv if arg not in LOCAL_ONLY_FLAGS]
