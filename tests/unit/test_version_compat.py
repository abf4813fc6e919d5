"""The provider on the Airflow release it runs on: its floor, its version, and what stands in for what is missing."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import airflow
import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

import airflow_order_provider
from airflow_order_provider import exceptions as exc
from airflow_order_provider import version_compat as compat
from airflow_order_provider.policies import BUILTIN_POLICIES
from tests.unit.test_policies import RETRY_TABLE

REPO = Path(__file__).resolve().parents[2]


def test_flags_are_read_from_the_installed_airflow():
    installed = Version(Version(airflow.__version__).base_version)
    assert compat.AIRFLOW_VERSION == installed
    assert compat.AIRFLOW_V_3_2_PLUS is (installed >= Version("3.2.0"))
    assert compat.AIRFLOW_V_3_3_PLUS is (installed >= Version("3.3.0"))
    assert compat.HAS_RETRY_POLICY is compat.AIRFLOW_V_3_3_PLUS


def test_the_dependency_floor_is_the_provider_floor():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (airflow_req,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "apache-airflow"]
    assert airflow_req.specifier.contains(compat.MIN_AIRFLOW_VERSION)
    assert not airflow_req.specifier.contains("3.0.6")
    assert f">={compat.MIN_AIRFLOW_VERSION}" in str(airflow_req.specifier)


def test_the_provider_version_is_the_package_metadatas():
    from airflow_order_provider.get_provider_info import get_provider_info

    assert airflow_order_provider.__version__ == version("airflow-order-provider")
    assert get_provider_info()["versions"] == [airflow_order_provider.__version__]


def test_below_the_floor_importing_the_provider_says_so_in_one_line(tmp_path):
    """
    Airflow 3.0.6 (as ``airflow.__version__`` says) is refused with both versions named. Airflow's
    configuration may have imported the provider already (its provider info), so the probe imports
    it afresh after setting the version.
    """
    code = (
        "import sys, airflow; airflow.__version__ = '3.0.6';"
        "[sys.modules.pop(m) for m in list(sys.modules) if m.split('.')[0] == 'airflow_order_provider'];"
        "import airflow_order_provider"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"AIRFLOW_HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)})
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last == (
        f"RuntimeError: The package `airflow-order-provider:{airflow_order_provider.__version__}` needs "
        f"Apache Airflow {compat.MIN_AIRFLOW_VERSION}+; this is Apache Airflow 3.0.6."
    )


@pytest.mark.parametrize(("policy", "error", "action"), RETRY_TABLE)
def test_errors_the_policy_fails_at_once_fail_at_once_on_every_release(policy, error, action):
    """
    3.3+: the error passes unchanged (the task's retry policy decides, tests/unit/test_policies.py).
    Before: what the policy would FAIL becomes Airflow's AirflowFailException (no retry), the rest
    passes unchanged (Airflow retries it per the same table's retries and back-off).
    """
    with pytest.raises(Exception) as raised:  # noqa: B017 (which one is the assertion)
        with compat.fail_at_once_on(policy.is_never_retried):
            raise error
    if compat.HAS_RETRY_POLICY or action == "DEFAULT":
        assert raised.value is error
    else:
        assert isinstance(raised.value, compat.AirflowFailException)
        assert raised.value.__cause__ is error
        assert str(error) in str(raised.value)


def test_an_airflow_fail_exception_passes_unchanged():
    error = exc.InvalidOrderError(["total_amount: does not match the items"])
    with pytest.raises(exc.InvalidOrderError):
        with compat.fail_at_once_on(BUILTIN_POLICIES["payment"].is_never_retried):
            raise error


def test_the_operators_get_the_retry_policy_only_where_airflow_has_it():
    defaults = BUILTIN_POLICIES["payment"].operator_defaults(scale=1.0)
    assert ("retry_policy" in defaults) is compat.HAS_RETRY_POLICY
    assert defaults["retries"] == 2


def test_the_ship_deadline_reference_is_the_orders_placed_at_time_where_airflow_takes_it():
    reference = compat.order_deadline_reference()
    if compat.HAS_CUSTOM_DEADLINE_REFERENCES:
        from airflow_order_provider.deadlines import OrderPlacedAt

        assert isinstance(reference, OrderPlacedAt)
    else:
        _, DeadlineReference, _ = compat.deadline_alert_classes()
        assert reference == DeadlineReference.DAGRUN_QUEUED_AT


def test_the_plugin_registers_the_reference_only_where_airflow_takes_it():
    from airflow_order_provider.plugins import OrderProviderPlugin

    assert bool(OrderProviderPlugin.deadline_references) is compat.HAS_CUSTOM_DEADLINE_REFERENCES


def test_no_version_check_outside_the_compat_module():
    """One place for version gates: no other provider module reads Airflow's version or walks frames."""
    offenders = []
    for path in (REPO / "airflow_order_provider").rglob("*.py"):
        if "version_compat" in path.relative_to(REPO).parts:
            continue
        text = path.read_text()
        for needle in ("__version__ as", "airflow.__version__", "from airflow import __version__", "sys._getframe",
                       "packaging.version"):
            if needle in text:
                offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert offenders == []
