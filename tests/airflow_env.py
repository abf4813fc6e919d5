"""
Isolate the test session's Airflow: its own AIRFLOW_HOME, SQLite metadata DB, this repo's DAGs.

Imported by ``tests/conftest.py`` before anything imports Airflow, because Airflow reads its
configuration once, at import. Processes the tests start (the end-to-end Airflow) get their own
environment from the harness, not this one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOME = Path(tempfile.mkdtemp(prefix="order-provider-airflow-"))

os.environ["AIRFLOW_HOME"] = str(HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
# The order bundle, and the saga machinery's example DAGs (tests/dags/saga_example) in a bundle of
# their own: dag.test() runs only DAGs it finds in a configured bundle.
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([
    {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
     "kwargs": {"path": str(REPO / "dags")}},
    {"name": "saga-examples", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
     "kwargs": {"path": str(REPO / "tests" / "dags" / "saga_example")}},
])
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# dag.test() on Airflow 3.1 and 3.2 signs its in-process execution API's tokens with it (as every
# deployment's api-server does); 3.3 stubs the validator out in-process.
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "order-provider-tests-jwt-secret")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__ORDER_PROVIDER__TIME_SCALE", "0.01")
# 5 h x 0.01 = 180 s of processing per order (36 s with the deployment's 1 h): dag.test() on a
# loaded machine can take longer than that; the workflow-timeout test gives its order its own.
os.environ.setdefault("AIRFLOW__ORDER_PROVIDER__WORKFLOW_TIMEOUT", "18000")
for name in [name for name in os.environ if name.startswith("AIRFLOW_CONN_")]:
    del os.environ[name]
