"""
The benchmark harness works: ``python -m benchmarks.run --smoke`` brings up the services and an
Airflow, measures P1 to P5 with small numbers (K=1, N=3, M=30 parked, one round), prints the table, writes
the report (to a temp dir, not docs/) and tears everything down. It checks that the harness runs,
not the figures.

    .venv/bin/python -m pytest tests/benchmarks -m bench
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.bench]


def test_the_smoke_benchmark_runs_and_prints_p1_to_p5(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_HOME"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out-dir", str(tmp_path)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=1800)
    except BaseException:
        # SIGTERM lets the harness tear its stack down (it stops its own process groups).
        proc.terminate()
        proc.communicate(timeout=120)
        raise
    assert proc.returncode == 0, out[-8000:]
    for p in ("P1", "P2", "P3", "P4", "P5"):
        assert re.search(rf"^{p}\s+\S.*\s(pass|FAIL)\s*$", out, re.MULTILINE), f"no {p} row in:\n{out[-5000:]}"
    for suffix in ("md", "json", "png"):
        assert (tmp_path / f"benchmarks.{suffix}").stat().st_size > 0
    report = json.loads((tmp_path / "benchmarks.json").read_text())
    assert set(report["results"]) == {"P1", "P2", "P3", "P4", "P5"}
    assert report["problems"] == []
    assert report["results"]["P3"]["parked_running_tis"] == 0
    assert report["results"]["P3"]["parked"] == report["results"]["P3"]["m"]
    assert set(report["results"]["P3"]["variants"]) == {"batch20"}  # beside the shipped settings
    # P2 at Airflow's default heartbeat interval beside the shipped one, with each slot's hold.
    interval = report["results"]["P2"]["heartbeat_interval"]
    assert (interval["default_value"], interval["shipped_value"]) == ("5", "1")
    for setting in ("default", "shipped"):
        for dag_id in ("order_processing", "order_shape_noop"):
            assert interval[setting][dag_id]["slots"]["tasks"] > 0
    assert report["meta"]["airflow_home"]
