"""
``airflow orders setup``: create or update the order pools from the policy table and check the
services' connections.

Registered through the provider info's ``cli`` entry (as the Celery and Kubernetes providers
register theirs): Airflow's CLI calls :func:`get_order_cli_commands` when it builds its parser
(Airflow 3.2+; ``airflow/cli/cli_parser.py``, ``ProvidersManager.cli_command_functions``). The same
command runs on any supported release as::

    python -m airflow_order_provider.cli setup [--no-test]

It exits 1 when a connection is missing or its service refuses it, after creating the pools.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

SETUP_HELP = "Create or update the order pools from the policy table and check the services' connections"
NO_TEST_HELP = "Only check that each connection exists; do not call the services"


def get_order_cli_commands() -> list[Any]:
    """The ``orders`` command group, as Airflow's CLI reads provider commands."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

    return [
        GroupCommand(
            name="orders",
            help="Order processing provider",
            subcommands=(
                ActionCommand(
                    name="setup",
                    help=SETUP_HELP,
                    func=lazy_load_command("airflow_order_provider.cli.setup_command"),
                    args=(Arg(("--no-test",), help=NO_TEST_HELP, action="store_true"),),
                ),
            ),
        )
    ]


def run_setup(test_connections: bool = True) -> int:
    """Create or update the pools, check the connections, print one line each; 1 if a problem is left."""
    from airflow.utils.session import create_session

    from airflow_order_provider.deployment import setup

    with create_session() as session:
        lines, problems = setup(session, test_connections=test_connections)
    for line in lines:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s): orders cannot complete until they are fixed", file=sys.stderr)
        return 1
    print("The deployment is ready for orders.")
    return 0


def setup_command(args: argparse.Namespace) -> None:
    """``airflow orders setup``."""
    status = run_setup(test_connections=not getattr(args, "no_test", False))
    if status:
        sys.exit(status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_order_provider.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    setup_parser = commands.add_parser("setup", help=SETUP_HELP)
    setup_parser.add_argument("--no-test", action="store_true", help=NO_TEST_HELP)
    args = parser.parse_args(argv)
    return run_setup(test_connections=not args.no_test)


if __name__ == "__main__":
    sys.exit(main())
