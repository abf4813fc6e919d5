"""
``docker-compose.yaml`` runs what the distributed end-to-end test runs.

Both follow :mod:`harness.topology`: the same Airflow components with the same
commands (the harness adds only flags for processes that share one log folder), the same Celery
settings, deploy/airflow-order.env for every Airflow component, and the policy table's queues,
each consumed by some worker. The file is also checked by ``docker-compose config -q`` (in
``.ci/run``, and here when the binary is installed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from airflow_order_provider.policies import policy_for, worker_autoscale
from airflow_order_provider.workers import autoscale_variable
from harness import topology
from harness.celery import CeleryDeployment

REPO = Path(__file__).resolve().parents[2]
TRYOUT_ENV = REPO / "deploy" / "compose-tryout.env"
SECRETS = ("AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "_AIRFLOW_WWW_USER_PASSWORD", "ORDER_SERVICES_API_KEY")
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
DEPLOY_ENV = "deploy/airflow-order.env"
#: compose service -> the harness component it is.
COMPONENT_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> CeleryDeployment:
    """The distributed test's deployment, built (not started) to read its commands and settings."""
    home = tmp_path_factory.mktemp("harness")
    return CeleryDeployment(home, "postgresql+psycopg2://postgres@127.0.0.1:5432/order_dist_x",
                            broker_url="redis://127.0.0.1:6379/13")


def airflow_services(services: dict) -> dict:
    return {name: spec for name, spec in services.items() if name.startswith("airflow-")}


def worker_services(services: dict) -> dict:
    return {name: spec for name, spec in services.items() if name.startswith("airflow-worker")}


def test_the_services_are_the_official_shape_plus_a_worker_per_queue_and_the_order_services(services):
    expected = {"postgres", "redis", "airflow-init", "order-services", *COMPONENT_SERVICES, *topology.compose_workers()}
    assert set(services) == expected


def test_the_components_run_the_commands_the_distributed_test_runs(services, harness):
    argv = harness.component_argv()
    for service, component in COMPONENT_SERVICES.items():
        assert services[service]["command"] == topology.AIRFLOW_COMPONENTS[component], service
        harness_names = [name for name in argv if name == component or name.startswith(f"{component}-")]
        assert harness_names, component
        for name in harness_names:
            assert topology.strip_local_flags(argv[name]) == topology.AIRFLOW_COMPONENTS[component], name


def test_two_schedulers_in_both(services, harness):
    assert services["airflow-scheduler"]["deploy"]["replicas"] == topology.SCHEDULERS
    assert len([n for n in harness.component_argv() if n.startswith("scheduler-")]) == topology.SCHEDULERS


def _queues_of(command: list[str]) -> list[str]:
    assert command[:3] == ["celery", "worker", "--queues"], command
    return command[3].split(",")


def test_every_queue_of_the_policy_table_has_workers_in_both(services, harness):
    compose_queues = {name: _queues_of(spec["command"]) for name, spec in worker_services(services).items()}
    assert compose_queues == topology.compose_workers()
    argv = harness.component_argv()
    harness_queues = {name: _queues_of(argv[name][:4]) for name in harness.workers}
    assert harness_queues == topology.e2e_workers()
    expected = topology.all_queues()
    assert expected == set(topology.service_queues().values()) | {"default"}
    assert set().union(*compose_queues.values()) == expected
    assert set().union(*harness_queues.values()) == expected
    for name in harness.workers:  # the harness adds only its local flags, a hostname and a concurrency
        extra = argv[name][4:]
        assert set(extra) - {"--celery-hostname", "--concurrency"} - topology.LOCAL_ONLY_FLAGS == {
            f"{name}@%h", str(harness.worker_concurrency)
        }


def test_worker_replicas_are_set_in_one_place(compose, services):
    replicas = {spec["deploy"]["replicas"] for spec in worker_services(services).values()}
    assert replicas == {"${ORDER_WORKER_REPLICAS:-1}"}
    assert compose["x-airflow-worker"]["deploy"]["replicas"] == "${ORDER_WORKER_REPLICAS:-1}"


def test_every_airflow_component_gets_the_deployment_settings_and_the_celery_settings(services, harness):
    env = harness.environment()
    for name, spec in airflow_services(services).items():
        assert spec["env_file"] == [DEPLOY_ENV], name
        environment = spec["environment"]
        for key, value in topology.CELERY_SETTINGS.items():
            assert key in environment, (name, key)
            assert key in env, ("harness", key)
            if value is not None:
                assert environment[key] == value == env[key], (name, key)
        for settings in (environment, env):
            assert settings["AIRFLOW__CELERY__BROKER_URL"].startswith(topology.BROKER_SCHEME)
            assert settings["AIRFLOW__CELERY__RESULT_BACKEND"].startswith(topology.RESULT_BACKEND_SCHEME)
        # The harness loads the same file (through the test's extra_env; here read directly).
    assert (REPO / DEPLOY_ENV).is_file()


def test_health_checks_and_start_order(services):
    for name, spec in services.items():
        if name == "airflow-init":
            continue
        assert spec.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name, spec in airflow_services(services).items():
        if name == "airflow-init":
            continue
        assert spec["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_airflow_init_migrates_creates_the_pools_and_the_connections(services):
    script = services["airflow-init"]["command"][1]
    steps = ["airflow db migrate", "python -m airflow_order_provider.pools", "airflow pools import",
             "airflow connections import"]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions)
    for service in topology.service_queues():
        assert "order_{s}_default" in script and service in script


def test_the_image_is_the_pinned_official_one_with_the_provider(services):
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:3\.3\.2$", text, re.M)
    assert "FROM ${AIRFLOW_IMAGE}" in text
    assert "/opt/order-provider[postgres]" in text and "services/pyproject.toml" in text
    for name, spec in services.items():
        if name.startswith("airflow-") or name == "order-services":
            assert spec["build"]["dockerfile"] == "docker/Dockerfile", name
            assert spec["build"]["args"]["AIRFLOW_IMAGE"] == "${AIRFLOW_IMAGE:-apache/airflow:3.3.2}"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed (.ci/run installs it)")
def test_docker_compose_config_accepts_the_file():
    result = subprocess.run(
        ["docker-compose", "--env-file", str(TRYOUT_ENV), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed (.ci/run installs it)")
def test_docker_compose_refuses_the_file_without_its_secrets(tmp_path):
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    result = subprocess.run(
        ["docker-compose", "--env-file", str(empty_env), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True, text=True, cwd=REPO, env=env,
    )
    assert result.returncode != 0
    assert "make compose-up generates one" in result.stderr


def test_the_secrets_have_no_defaults(compose):
    text = COMPOSE_FILE.read_text()
    for name in SECRETS:
        uses = re.findall(r"\$\{" + re.escape(name) + r"(:[-?][^}]*)?\}", text)
        assert uses, name
        assert all(use.startswith(":?") for use in uses), (name, uses)
    tryout = dict(line.split("=", 1) for line in TRYOUT_ENV.read_text().splitlines() if line and not line.startswith("#"))
    assert set(tryout) == set(SECRETS)


def test_published_ports_bind_to_loopback_unless_asked(services):
    published = {name: spec["ports"] for name, spec in services.items() if spec.get("ports")}
    assert published == {
        "airflow-apiserver": ["${ORDER_BIND_ADDRESS:-127.0.0.1}:${ORDER_UI_PORT:-8080}:8080"],
        "order-services": ["${ORDER_BIND_ADDRESS:-127.0.0.1}:${ORDER_SERVICES_PORT:-8700}:8700"],
    }


def test_the_base_images_are_official_by_default_and_chosen_by_variables(services):
    assert services["postgres"]["image"] == "${POSTGRES_IMAGE:-postgres:16}"
    assert services["redis"]["image"] == "${REDIS_IMAGE:-redis:7.2-bookworm}"


def test_each_worker_autoscales_between_the_policy_tables_bounds(services):
    for service in topology.service_queues():
        spec = services[f"airflow-worker-{policy_for(service).queue}"]
        high, low = worker_autoscale(service)
        assert spec["command"][4:] == ["--autoscale", f"${{{autoscale_variable(service)}:-{high},{low}}}"], service


def test_the_build_context_leaves_out_venvs_and_state():
    ignored = (REPO / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".compat", ".compose", ".e2e", "tests"):
        assert path in ignored
