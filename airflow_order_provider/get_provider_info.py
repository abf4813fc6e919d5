"""Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_order_provider import __version__
from airflow_order_provider.services import SERVICES as _SERVICES


def _connection_type(service: str) -> dict[str, Any]:
    hook_class, hook_name = _SERVICES[service]
    return {
        "connection-type": f"order_{service}",
        "hook-class-name": f"airflow_order_provider.hooks.{service}.{hook_class}",
        "hook-name": hook_name,
        "conn-fields": {
            "timeout": {
                "label": "Request timeout (seconds)",
                "description": "How long one HTTP call may take before it counts as a transient failure.",
                "schema": {"type": ["number", "null"], "default": 10, "minimum": 0.1},
            },
        },
        "ui-field-behaviour": {
            "hidden-fields": ["login", "extra"],
            "relabeling": {"host": "Host or base URL", "password": "API key", "schema": "Scheme"},
            "placeholders": {
                "host": "127.0.0.1 or https://payments.example.com",
                "port": "8700",
                "schema": "http",
                "password": "sent as Authorization: Bearer <API key>",
            },
        },
    }


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-order-provider",
        "name": "Order Processing",
        "description": (
            "Centrally orchestrated e-commerce order process: payment, inventory, shipping and "
            "confirmation as steps, with compensation, per-service retry policies and timeouts."
        ),
        "versions": [__version__],
        # `airflow orders setup` (Airflow loads provider CLI commands from provider info from 3.2).
        "cli": ["airflow_order_provider.cli.get_order_cli_commands"],
        "integrations": [
            {
                "integration-name": f"Order {service.title()} Service",
                "external-doc-url": "https://airflow.apache.org/docs/apache-airflow-providers/",
                "tags": ["service"],
            }
            for service in _SERVICES
        ],
        "operators": [
            {
                "integration-name": f"Order {service.title()} Service",
                "python-modules": [f"airflow_order_provider.operators.{service}"],
            }
            for service in _SERVICES
        ],
        "hooks": [
            {
                "integration-name": f"Order {service.title()} Service",
                "python-modules": [
                    "airflow_order_provider.hooks.base",
                    f"airflow_order_provider.hooks.{service}",
                ],
            }
            for service in _SERVICES
        ],
        "sensors": [
            {
                "integration-name": "Order Shipping Service",
                "python-modules": ["airflow_order_provider.sensors.shipping"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Order Shipping Service",
                "python-modules": ["airflow_order_provider.triggers.shipping"],
            }
        ],
        "connection-types": [_connection_type(service) for service in _SERVICES],
        "config": {
            "order_provider": {
                "description": "Settings of the order processing provider.",
                "options": {
                    "time_scale": {
                        "description": (
                            "Multiplies every retry interval, step timeout, workflow timeout and "
                            "deadline the provider sets. 1.0 runs the real policies; 0.01 runs them a "
                            "hundred times faster for tests and demos. Step timeouts never go below 5 s."
                        ),
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "0.01",
                        "default": "1.0",
                    },
                    "preload": {
                        "description": (
                            "Import the whole provider (operators, hooks, order model) when the "
                            "provider's plugin loads. With [core] lazy_load_plugins = False, Airflow loads "
                            "plugins as each of its processes starts, so the scheduler's LocalExecutor "
                            "workers (and the task processes they fork) and the DAG processor's parsing "
                            "processes find the provider imported, instead of importing it again in every "
                            "task and every parse. Restart Airflow after upgrading the provider."
                        ),
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "False",
                    },
                    "nudge_runs": {
                        "description": (
                            "Let the scheduler examine a run on its next loop when one of its tasks reports "
                            "a new state, instead of after every other open run. Airflow's scheduler takes "
                            "at most [scheduler] max_dagruns_per_loop_to_schedule running runs per loop, "
                            "least recently examined first, and a finished task does not touch its run: "
                            "with many runs open (orders waiting for approval or the carrier) every step of "
                            "every run waits for the round robin. With this on, the provider's plugin adds "
                            "a middleware to the API server that, after each successful task state report "
                            "of the Execution API (PATCH /execution/task-instances/{id}/state and "
                            "/skip-downstream), sets that run's last_scheduling_decision to NULL, as "
                            "Airflow does for a new or cleared run, so that the scheduler takes it first; "
                            "and again when a decision that no task reports falls due: a retry's delay, a "
                            "sensor's reschedule date, the trigger rules after a final failure. With it, "
                            "a small max_dagruns_per_loop_to_schedule (deploy/airflow-order.env ships 2) "
                            "keeps waiting runs from costing the others. "
                            "It serves every DAG of the deployment, changes only the order in which runs "
                            "are examined, and is safe with several schedulers (runs are still taken with "
                            "row locks). Read by the API server at start."
                        ),
                        "version_added": "0.2.0",
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    },
                    "policy_overrides": {
                        "description": (
                            "JSON object that changes rows of the retry policy table for this "
                            "deployment, keyed by service (payment, inventory, shipping, notification). "
                            "Settings: attempts, first_interval, backoff, max_interval, step_timeout, "
                            "decision_timeout (seconds) and on_retries_exhausted (compensate, pause, fail)."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": '{"payment": {"attempts": 5, "on_retries_exhausted": "pause"}}',
                        "default": "",
                    },
                    "workflow_timeout": {
                        "description": (
                            "Seconds an order's processing may take, waits for a person or the carrier "
                            "left out (they have their own timeouts). Past it the order is compensated. "
                            "Empty: 3600."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "3600",
                        "default": "",
                    },
                    "ship_deadline": {
                        "description": (
                            "Seconds after the order is queued by which it must ship (a DeadlineAlert "
                            "alerts operations). Empty: 86400."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "86400",
                        "default": "",
                    },
                    "approval_threshold": {
                        "description": (
                            "Orders whose total (minor units) is above this wait for a person's approval. "
                            "Empty: 100000."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "100000",
                        "default": "",
                    },
                    "approval_timeout": {
                        "description": "Seconds a high-value order waits for approval; then it is rejected. Empty: 86400.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "86400",
                        "default": "",
                    },
                    "dispatch_timeout": {
                        "description": "Seconds to wait for the carrier's pickup of a shipment. Empty: 86400.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "86400",
                        "default": "",
                    },
                    "alert_email": {
                        "description": (
                            "Operations address that alerts are emailed to through the notification "
                            "service (its outbox), besides the task log. Empty: log only."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "ops@example.com",
                        "default": "ops@example.com",
                    },
                },
            },
        },
    }
