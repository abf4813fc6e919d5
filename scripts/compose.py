"""
``make compose-up`` / ``make compose-down``: docker-compose.yaml brought up for real, and removed.

    python scripts/compose.py up       build, start, wait for every healthcheck and the order DAG;
                                       print the UI's address and the admin's password; write
                                       .compose/credentials.json (ui_url, admin_user, admin_password,
                                       services_url, services_api_key)
    python scripts/compose.py down     remove the containers, networks and volumes, and check that
                                       nothing of the project is left

``up`` in order:

1. **Secrets**, generated on the first start into ``.compose/compose.env`` (mode 600) and kept for
   the next ones: the JWT secret, the Fernet key, the admin's password and the services' API key. A
   value set in the environment wins (compose reads the environment before the env file).
2. **Worker pools**: ``ORDER_<SERVICE>_AUTOSCALE`` (``max,min`` of Celery's autoscaler) from the
   policy table times one setting, ``ORDER_WORKER_SCALE`` (default: cores / 10, at most 1: 0.2 on
   2 cores, payment 1-10), through ``python -m airflow_order_provider.workers``.
3. **Images**: the official ones named in docker-compose.yaml when present or pulled; where a pull
   fails (no registry reachable), stand-ins built from Debian's packages by
   ``scripts/build-standin-images.sh``, selected through ``AIRFLOW_IMAGE``, ``POSTGRES_IMAGE``,
   ``REDIS_IMAGE``. ``ORDER_STANDIN_IMAGES=1`` skips the pulls.
4. ``docker-compose build`` (the project's image, docker/Dockerfile), ``up -d``, then wait until
   every container with a healthcheck is healthy, airflow-init exited 0, and the API lists the
   order DAG.

Options: ``--project NAME`` (default ``airflow-order``), ``--state-dir DIR`` (default ``.compose``),
``--file EXTRA.yaml`` (an override file on top of docker-compose.yaml; repeatable). Ports:
``ORDER_UI_PORT`` (8080), ``ORDER_SERVICES_PORT`` (8700), on ``ORDER_BIND_ADDRESS`` (127.0.0.1).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DEFAULT_PROJECT = "airflow-order"
DAG_ID = "order_processing"
ADMIN_USER = "admin"
#: The compose file's image variables, and the stand-in each falls back to.
IMAGE_VARIABLES = {"AIRFLOW_IMAGE": "airflow", "POSTGRES_IMAGE": "postgres", "REDIS_IMAGE": "redis"}
SECRET_VARIABLES = ("AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "_AIRFLOW_WWW_USER_PASSWORD", "ORDER_SERVICES_API_KEY")
PULL_TIMEOUT = 180.0


class ComposeError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[compose] {time.strftime('%H:%M:%S')} {message}", flush=True)


# -- settings ------------------------------------------------------------------------------------------


def new_secret(name: str) -> str:
    if name == "AIRFLOW_FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    # Letters and digits only: safe in a URL, a command line and JSON, whatever reads it.
    return secrets.token_hex(20)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value
    return values


def write_env_file(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by scripts/compose.py (make compose-up); the secrets are generated once and kept."]
    lines += [f"{key}={value}" for key, value in values.items()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)


def compose_defaults() -> dict[str, str]:
    """``{VARIABLE: default}`` of every ``${VARIABLE:-default}`` in docker-compose.yaml."""
    return dict(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):-([^}]*)\}", COMPOSE_FILE.read_text()))


def effective(name: str, env_file: dict[str, str], defaults: dict[str, str]) -> str:
    """What compose will use: the environment, then the env file, then the file's default."""
    return os.environ.get(name) or env_file.get(name) or defaults.get(name, "")


def worker_scale() -> float:
    raw = os.environ.get("ORDER_WORKER_SCALE", "")
    if raw.strip():
        try:
            scale = float(raw)
        except ValueError:
            raise ComposeError(f"ORDER_WORKER_SCALE must be a positive number, got {raw!r}") from None
        if not scale > 0:
            raise ComposeError(f"ORDER_WORKER_SCALE must be a positive number, got {raw!r}")
        return scale
    return min(1.0, (os.cpu_count() or 1) / 10)


def autoscale_settings(scale: float, state_dir: Path) -> dict[str, str]:
    """``ORDER_<SERVICE>_AUTOSCALE`` from the policy table (``python -m airflow_order_provider.workers``)."""
    env = {**os.environ, "AIRFLOW_HOME": str(state_dir / "airflow-home")}
    out = subprocess.run(
        [sys.executable, "-m", "airflow_order_provider.workers", "--scale", str(scale)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise ComposeError(f"python -m airflow_order_provider.workers failed:\n{out.stderr[-2000:]}")
    return dict(line.split("=", 1) for line in out.stdout.split())


# -- docker --------------------------------------------------------------------------------------------


def docker(*args: str, check: bool = True, timeout: float | None = None, capture: bool = True):
    result = subprocess.run(["docker", *args], capture_output=capture, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise ComposeError(f"docker {' '.join(args)} failed: {(result.stderr or '').strip()[-2000:]}")
    return result


def check_docker() -> None:
    if shutil.which("docker") is None:
        raise ComposeError("no docker command: install Docker, or run bash scripts/start-docker.sh as root")
    if docker("info", check=False, timeout=30).returncode != 0:
        raise ComposeError("no Docker daemon answers: start Docker, or run bash scripts/start-docker.sh as root")


def compose_command() -> list[str]:
    """``ORDER_COMPOSE`` if set; else ``docker-compose`` (1.29, Debian's), else ``docker compose``."""
    if os.environ.get("ORDER_COMPOSE"):
        return shlex.split(os.environ["ORDER_COMPOSE"])
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    raise ComposeError("neither docker-compose nor the docker compose plugin is installed")


class Stack:
    """One compose project of docker-compose.yaml (plus override files), with its state directory."""

    def __init__(self, project: str, state_dir: Path, extra_files: list[Path]) -> None:
        self.project = project
        self.state_dir = state_dir
        self.env_path = state_dir / "compose.env"
        self.credentials_path = state_dir / "credentials.json"
        self.files = [COMPOSE_FILE, *extra_files]

    def compose(self, *args: str, check: bool = True, capture: bool = False, env: dict | None = None):
        argv = [*compose_command(), "-p", self.project, "--project-directory", str(ROOT)]
        if self.env_path.exists():
            argv += ["--env-file", str(self.env_path)]
        for path in self.files:
            argv += ["-f", str(path)]
        result = subprocess.run([*argv, *args], cwd=ROOT, text=True, capture_output=capture,
                                env={**os.environ, **(env or {})})
        if check and result.returncode != 0:
            detail = (result.stderr or "")[-3000:] if capture else ""
            raise ComposeError(f"{' '.join(argv[:1])} {' '.join(args)} exited with {result.returncode} {detail}")
        return result

    def containers(self) -> list[dict]:
        """``docker inspect`` of every container of the project (running or not)."""
        ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}").stdout.split()
        return json.loads(docker("inspect", *ids).stdout) if ids else []

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        return {
            "containers": docker("ps", "-aq", "--filter", label).stdout.split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).stdout.split(),
            "networks": docker("network", "ls", "-q", "--filter", label).stdout.split(),
        }


# -- images ------------------------------------------------------------------------------------------


def choose_images(defaults: dict[str, str]) -> dict[str, str]:
    """``{VARIABLE: image}`` for the image variables the stand-ins must replace (empty: all official)."""
    missing = []
    for variable in IMAGE_VARIABLES:
        if os.environ.get(variable):
            continue  # the user chose
        image = defaults[variable]
        if docker("image", "inspect", image, check=False).returncode == 0:
            continue
        if os.environ.get("ORDER_STANDIN_IMAGES") != "1":
            log(f"docker pull {image}")
            try:
                pulled = docker("pull", image, check=False, timeout=PULL_TIMEOUT).returncode == 0
            except subprocess.TimeoutExpired:
                pulled = False
            if pulled:
                continue
            log(f"cannot pull {image} (no image registry reachable?)")
        missing.append(variable)
    if not missing:
        return {}
    names = [IMAGE_VARIABLES[v] for v in missing]
    log(f"using stand-in images for {', '.join(defaults[v] for v in missing)}: built here from Debian's "
        f"packages and the Python package index (scripts/build-standin-images.sh {' '.join(names)})")
    out = subprocess.run(["bash", str(ROOT / "scripts" / "build-standin-images.sh"), *names],
                         cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise ComposeError("scripts/build-standin-images.sh failed (its messages are above)")
    built = dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)
    if set(built) != set(missing):
        raise ComposeError(f"scripts/build-standin-images.sh printed {built}, expected {missing}")
    return built


# -- waiting -------------------------------------------------------------------------------------------


def service_of(container: dict) -> str:
    labels = container["Config"]["Labels"]
    return f"{labels.get('com.docker.compose.service')}_{labels.get('com.docker.compose.container-number', '1')}"


def wait_healthy(stack: Stack, timeout: float) -> None:
    """Every container healthy (or running, without a healthcheck), airflow-init exited 0."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        waiting = []
        for c in stack.containers():
            name, state = service_of(c), c["State"]
            if name.startswith("airflow-init"):
                if state["Status"] == "exited" and state["ExitCode"] != 0:
                    logs = docker("logs", "--tail", "40", c["Id"], check=False)
                    raise ComposeError(f"airflow-init exited with {state['ExitCode']}:\n{logs.stdout}{logs.stderr}")
                if state["Status"] != "exited":
                    waiting.append(f"{name} running")
                continue
            if state["Status"] != "running":
                waiting.append(f"{name} {state['Status']} (exit code {state['ExitCode']})")
            elif "Health" in state and state["Health"]["Status"] != "healthy":
                waiting.append(f"{name} {state['Health']['Status']}")
        if not waiting and stack.containers():
            return
        summary = ", ".join(sorted(waiting))
        if summary != last:
            log(f"waiting for: {summary}")
            last = summary
        if time.monotonic() > deadline:
            raise ComposeError(f"not healthy after {timeout:.0f}s: {summary}")
        time.sleep(3)


def wait_for_dag(ui_url: str, password: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    problem = ""
    while time.monotonic() < deadline:
        try:
            token = requests.post(f"{ui_url}/auth/token", json={"username": ADMIN_USER, "password": password},
                                  timeout=30)
            if token.status_code in (200, 201):
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                dag = requests.get(f"{ui_url}/api/v2/dags/{DAG_ID}", headers=headers, timeout=30)
                if dag.status_code == 200:
                    return
                problem = f"GET /api/v2/dags/{DAG_ID} answered {dag.status_code}"
            else:
                problem = f"POST /auth/token answered {token.status_code}: {token.text[:200]}"
        except requests.RequestException as exc:
            problem = str(exc)
        time.sleep(3)
    raise ComposeError(f"the API did not list the DAG {DAG_ID} within {timeout:.0f}s: {problem}")


# -- the commands --------------------------------------------------------------------------------------


def up(stack: Stack, timeout: float) -> dict[str, str]:
    started = time.monotonic()
    check_docker()
    defaults = compose_defaults()
    kept = read_env_file(stack.env_path)
    values = {name: kept.get(name) or new_secret(name) for name in SECRET_VARIABLES}
    generated = [name for name in SECRET_VARIABLES if name not in kept and not os.environ.get(name)]
    scale = worker_scale()
    autoscale = autoscale_settings(scale, stack.state_dir)
    values.update(autoscale)
    write_env_file(stack.env_path, values)  # before the image step: compose needs the secrets to parse
    if generated:
        log(f"generated {', '.join(generated)} into {stack.env_path} (kept for the next starts)")
    log(f"worker pools (ORDER_WORKER_SCALE={scale:g}): "
        + ", ".join(f"{k}={effective(k, values, defaults)}" for k in autoscale))
    values.update(choose_images(defaults))
    write_env_file(stack.env_path, values)
    log("building the project's image (docker/Dockerfile on " + effective("AIRFLOW_IMAGE", values, defaults) + ")")
    stack.compose("build", "airflow-init")
    log("starting the stack")
    stack.compose("up", "-d", "--no-build", "--remove-orphans")
    wait_healthy(stack, max(60.0, timeout - (time.monotonic() - started)))
    bind = os.environ.get("ORDER_BIND_ADDRESS") or "127.0.0.1"
    host = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
    credentials = {
        "ui_url": f"http://{host}:{effective('ORDER_UI_PORT', values, defaults)}",
        "admin_user": ADMIN_USER,
        "admin_password": effective("_AIRFLOW_WWW_USER_PASSWORD", values, defaults),
        "services_url": f"http://{host}:{effective('ORDER_SERVICES_PORT', values, defaults)}",
        "services_api_key": effective("ORDER_SERVICES_API_KEY", values, defaults),
    }
    wait_for_dag(credentials["ui_url"], credentials["admin_password"], 300.0)
    stack.credentials_path.write_text(json.dumps(credentials, indent=2) + "\n")
    stack.credentials_path.chmod(0o600)
    log(f"up in {time.monotonic() - started:.0f}s (project {stack.project})")
    print(f"\n  Airflow UI and API: {credentials['ui_url']}   user {ADMIN_USER}, password {credentials['admin_password']}")
    print(f"  order services:     {credentials['services_url']}   (API key in {stack.credentials_path})")
    print("  stop and remove:    make compose-down\n", flush=True)
    return credentials


def down(stack: Stack) -> None:
    check_docker()
    # The file's secrets are required even to remove the stack: any value parses.
    placeholders = {name: "unused-by-down" for name in SECRET_VARIABLES if not os.environ.get(name)}
    if stack.env_path.exists():
        placeholders = {k: v for k, v in placeholders.items() if k not in read_env_file(stack.env_path)}
    stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", env=placeholders)
    left = {kind: ids for kind, ids in stack.leftovers().items() if ids}
    if left:
        raise ComposeError(f"left behind by compose down (project {stack.project}): {left}")
    stack.credentials_path.unlink(missing_ok=True)
    log(f"project {stack.project} removed: no container, volume or network of it is left")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--project", default=os.environ.get("ORDER_COMPOSE_PROJECT", DEFAULT_PROJECT))
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".compose")
    parser.add_argument("--file", type=Path, action="append", default=[], help="an override file (repeatable)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the stack to be healthy")
    args = parser.parse_args(argv)
    for path in args.file:
        if not path.is_file():
            parser.error(f"--file {path}: no such file")
    stack = Stack(args.project, args.state_dir.resolve(), [p.resolve() for p in args.file])
    try:
        if args.command == "up":
            up(stack, args.timeout)
        else:
            down(stack)
    except ComposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
