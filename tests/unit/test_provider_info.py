from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import distribution, entry_points
from pathlib import Path

import airflow
import jsonschema

from airflow_order_provider.get_provider_info import get_provider_info


def test_provider_info_validates_against_airflows_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_package_name_is_the_distribution_name():
    assert get_provider_info()["package-name"] == distribution("airflow-order-provider").metadata["Name"]
    assert get_provider_info()["versions"][0] == distribution("airflow-order-provider").version


def test_entry_point_points_at_get_provider_info():
    (ep,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_order")]
    assert ep.load() is get_provider_info


def test_every_declared_class_and_module_imports():
    import importlib

    info = get_provider_info()
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn["connection-type"]
        assert hook.hook_name == conn["hook-name"]
        assert conn["ui-field-behaviour"]["relabeling"]["password"] == "API key"
    for group in ("operators", "hooks"):
        for entry in info[group]:
            for module in entry["python-modules"]:
                importlib.import_module(module)


def test_airflow_cli_knows_the_provider_and_its_config(tmp_path):
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    shown = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "get", "airflow-order-provider"],
        capture_output=True, text=True, env=env, check=True,
    )
    assert "airflow-order-provider" in shown.stdout
    scale = subprocess.run(
        [sys.executable, "-m", "airflow", "config", "get-value", "order_provider", "time_scale"],
        capture_output=True, text=True, env={**env, "AIRFLOW__ORDER_PROVIDER__TIME_SCALE": "0.25"},
        check=True,
    )
    assert scale.stdout.strip() == "0.25"
