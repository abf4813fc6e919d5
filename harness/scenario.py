"""
What the deployment scenarios run outside pytest share (``python -m tests.integration.upgrade``,
``python -m tests.integration.install_walkthrough``): a line of progress, a wait for a condition,
and what a venv has installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.common import HarnessError


def log(prefix: str, text: str) -> None:
    print(f"[{prefix}] {time.strftime('%H:%M:%S')} {text}", flush=True)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 300.0, poll: float = 1.0) -> Any:
    """``check()``'s first true value; HarnessError naming ``what`` when none comes within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"{what}: not within {timeout:.0f}s")
        time.sleep(poll)


def installed(python: Path, workdir: Path) -> dict[str, str]:
    """
    What ``python``'s venv has: ``{"airflow", "provider", "file", "record"}`` (Airflow's version, the
    provider's, the file it is imported from, its installed RECORD), probed in ``workdir``.
    """
    code = (
        "import json, airflow, airflow_order_provider as p; from importlib.metadata import distribution as d;"
        "r = d('airflow-order-provider');"
        "print(json.dumps({'airflow': airflow.__version__, 'provider': r.version, 'file': p.__file__,"
        " 'record': r.read_text('RECORD')}))"
    )
    workdir.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300, cwd=workdir,
                         env={**os.environ, "AIRFLOW_HOME": str(workdir / "probe")})
    if out.returncode != 0:
        raise HarnessError(f"{python} cannot import Airflow and the provider:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def tear_down(prefix: str, deployment: Any, services: Any, database: Any, home: Path, *, failed: bool,
              keep: bool) -> None:
    """Stop what a scenario started (Airflow, the services), drop its database; keep its logs if it failed."""
    if failed:
        sys.stderr.write(f"\n[{prefix}] failure: tails of the Airflow component logs\n{deployment.diagnostics(60)}\n")
    killed = deployment.stop()
    if killed:
        log(prefix, f"had to SIGKILL leftover processes: {killed}")
    services.stop()
    database.drop()
    if failed or keep:
        log(prefix, f"logs kept in {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
