"""
Print the order pools as ``airflow pools import`` reads them::

    python -m airflow_order_provider.pools > order-pools.json && airflow pools import order-pools.json

The sizes come from the policy table (:func:`airflow_order_provider.policies.pool_specs`) with this
deployment's ``[order_provider] policy_overrides``.
"""

from __future__ import annotations

import json

from airflow_order_provider.policies import pool_specs


def main() -> None:
    print(json.dumps(pool_specs(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
