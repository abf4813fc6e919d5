"""
Everything an order task imports, in one module to preload into long-lived worker processes.

Every Airflow task runs in a new process that parses its DAG file. With the LocalExecutor's
workers started from a ``forkserver`` that imported this module first (``deploy/low-latency.env``)::

    AIRFLOW__SCHEDULER__MP_START_METHOD=forkserver
    AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD=airflow.sdk.execution_time.task_runner,airflow_order_provider.preload

each task process inherits the provider, its hooks and the standard operators it builds on
instead of importing them again; parsing ``order_processing.py`` then only builds the DAG.
Importing it has no side effect but the imports. The workers keep the code they preloaded: restart
the scheduler after upgrading the provider (as Celery workers are restarted).
"""

from __future__ import annotations

from importlib import import_module

import airflow.providers.standard.operators.hitl  # noqa: F401
import airflow.providers.standard.operators.python  # noqa: F401

import airflow_order_provider.models  # noqa: F401
import airflow_order_provider.notifications.alerts  # noqa: F401
import airflow_order_provider.notifications.deadline  # noqa: F401
import airflow_order_provider.order_form  # noqa: F401
import airflow_order_provider.order_saga  # noqa: F401
import airflow_order_provider.priority  # noqa: F401
import airflow_order_provider.signals  # noqa: F401
from airflow_order_provider.hooks import HOOK_CLASSES

# The hooks load when a step runs (never at parse time): preload them too.
for _path in HOOK_CLASSES.values():
    import_module(_path.rpartition(".")[0])
