"""[order_provider] preload: with plugins loaded at start, a process has the provider imported before it forks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = (
    "import json, sys, airflow;"
    "print(json.dumps(sorted(m for m in ('airflow_order_provider.operators.base', 'airflow_order_provider.models',"
    " 'airflow_order_provider.hooks.payment', 'airflow_order_provider.order_saga') if m in sys.modules)))"
)
EVERYTHING = [
    "airflow_order_provider.hooks.payment",
    "airflow_order_provider.models",
    "airflow_order_provider.operators.base",
    "airflow_order_provider.order_saga",
]


def loaded_after_import_airflow(tmp_path, **settings: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__CORE__LAZY", "AIRFLOW__ORDER_PROVIDER__PRE"))}
    env.update(AIRFLOW_HOME=str(tmp_path), **settings)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False", "AIRFLOW__ORDER_PROVIDER__PRELOAD": "True"}, EVERYTHING),
        ({"AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False"}, []),  # the plugin alone stays light
        ({"AIRFLOW__ORDER_PROVIDER__PRELOAD": "True"}, []),  # plugins loaded lazily: nothing at start
    ],
    ids=["preload", "plugin-only", "lazy-plugins"],
)
def test_the_provider_is_imported_at_start_only_when_asked(tmp_path, settings, expected):
    assert loaded_after_import_airflow(tmp_path, **settings) == expected


def test_a_process_that_imports_the_provider_first_still_loads_the_plugin(tmp_path):
    """
    `python -m airflow_order_provider.pools` imports the policies, which import Airflow, which loads
    the plugins: the preload must not import the provider in the middle of its own import (a
    circular import failed the plugin, and Airflow's error reached the JSON on stdout).
    """
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
           "AIRFLOW__ORDER_PROVIDER__PRELOAD": "True"}
    out = subprocess.run([sys.executable, "-m", "airflow_order_provider.pools"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Failed to import plugin" not in out.stdout + out.stderr
    assert set(json.loads(out.stdout)) == {"order_payment", "order_inventory", "order_shipping", "order_notification"}
