"""
What the order API needs to know of Airflow's API server that differs between releases.

Kept here, beside the other version-dependent code; read on apache-airflow 3.1.8, 3.2.2 and 3.3.2.
"""

from __future__ import annotations

from airflow_order_provider.version_compat import AIRFLOW_V_3_2_PLUS

if AIRFLOW_V_3_2_PLUS:
    #: What creating a run raises for a conf its DAG's params refuse (or a run id Airflow refuses):
    #: ``ValueError`` subclasses from 3.2, where Airflow's trigger endpoint catches ValueError alone.
    RUN_REFUSED: tuple[type[Exception], ...] = (ValueError,)
else:
    # 3.1: the params' ParamValidationError is no ValueError; its trigger endpoint catches both.
    from airflow.exceptions import ParamValidationError

    RUN_REFUSED = (ValueError, ParamValidationError)
