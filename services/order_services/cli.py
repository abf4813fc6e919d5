"""Command line: ``order-services serve --host 127.0.0.1 --port 8700 --db PATH_OR_URL [--api-key KEY]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

API_KEY_ENV = "ORDER_SERVICES_API_KEY"

log = logging.getLogger("order_services")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="order-services",
        description="Reference order services (payment, inventory, shipping, notification) over HTTP.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the HTTP API (one uvicorn process)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8700, help="port to bind (default: 8700)")
    serve.add_argument(
        "--db",
        default="order-services.db",
        help="SQLite file path or SQLAlchemy URL, e.g. postgresql://user@host/db (default: order-services.db)",
    )
    serve.add_argument(
        "--api-key",
        default=None,
        help=f"require 'Authorization: Bearer KEY' on every request but GET /health (or set ${API_KEY_ENV})",
    )
    serve.add_argument("--initial-stock", type=int, default=1000, help="units of a SKU when first seen")
    serve.add_argument("--hold-seconds", type=float, default=86400.0, help="lifetime of a reservation hold")
    serve.add_argument(
        "--dispatch-delay", type=float, default=5.0, help="seconds until a scheduled shipment is dispatched"
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level",
    )
    return parser


def serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.initial_stock < 0:
        parser.error("--initial-stock must be >= 0")
    if args.hold_seconds <= 0:
        parser.error("--hold-seconds must be > 0")
    if args.dispatch_delay < 0:
        parser.error("--dispatch-delay must be >= 0")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")

    import uvicorn

    from order_services.app import create_app
    from order_services.storage import normalize_db_url, redact_db_url

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    db_url = normalize_db_url(args.db)
    app = create_app(
        db_url,
        api_key=api_key,
        initial_stock=args.initial_stock,
        hold_seconds=args.hold_seconds,
        dispatch_delay=args.dispatch_delay,
    )
    # Never log the key itself, and hide a password in the database URL.
    log.info(
        "order-services on http://%s:%d db=%s auth=%s initial_stock=%d hold_seconds=%g dispatch_delay=%g",
        args.host,
        args.port,
        redact_db_url(db_url),
        "bearer" if api_key else "off",
        args.initial_stock,
        args.hold_seconds,
        args.dispatch_delay,
    )
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, workers=1, timeout_graceful_shutdown=5
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args, parser)
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
