"""
Print the Celery workers' autoscale bounds, scaled to a machine, as the compose file reads them::

    python -m airflow_order_provider.workers --scale 0.2
    ORDER_PAYMENT_AUTOSCALE=10,1
    ...

One line per service, ``ORDER_<SERVICE>_AUTOSCALE=max,min`` (``airflow celery worker --autoscale``
takes ``max,min``): the policy table's ``min_workers`` and ``max_workers`` (a worker pool per service)
times ``--scale`` (:func:`airflow_order_provider.policies.worker_autoscale`). ``make compose-up``
writes them into ``.compose/compose.env`` from one setting, ``ORDER_WORKER_SCALE``.
"""

from __future__ import annotations

import argparse

from airflow_order_provider.policies import BUILTIN_POLICIES, worker_autoscale


def autoscale_variable(service: str) -> str:
    """The compose file's variable of the service's worker: ``ORDER_PAYMENT_AUTOSCALE``."""
    return f"ORDER_{service.upper()}_AUTOSCALE"


def autoscale_settings(scale: float) -> dict[str, str]:
    """``{variable: "max,min"}`` of every service's worker."""
    return {
        autoscale_variable(service): "{},{}".format(*worker_autoscale(service, scale)) for service in BUILTIN_POLICIES
    }


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m airflow_order_provider.workers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=_scale, default=1.0, help="multiplies the table's worker bounds (default 1)")
    args = parser.parse_args(argv)
    for name, value in autoscale_settings(args.scale).items():
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
