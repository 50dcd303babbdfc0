"""`qr-collector web [--host HOST] [--port PORT]`: the safety office's web page (collector/web/).

Served by waitress (pure Python, production-grade, no access log: no URL, no form value reaches the
server's log). Put it behind the site's TLS proxy to reach it from other machines.
"""

from __future__ import annotations

import argparse
import signal
import sys

from collector.commands import EXIT_CONFIG, add_config_argument, load_or_explain, start_logging
from collector.store import Store
from device.errors import ConfigError
from device.notify import Notifier

EXIT_DATABASE = 1
# The address is taken or not ours to bind: as EX_UNAVAILABLE, so systemd's restarts keep trying.
EXIT_LISTEN = 69


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument(
        "--refresh", type=int, default=30, metavar="SECONDS", help="how often Today reloads (default 30)"
    )


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    start_logging(settings)
    # Imported here: the other commands do not pay for Flask.
    import sqlalchemy as sa
    import waitress

    from collector.web.app import create_app

    store = Store(settings.database_url)
    try:
        if settings.database.migrate:
            store.migrate()
        app = create_app(settings, store, refresh_s=max(args.refresh, 2))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except sa.exc.SQLAlchemyError as exc:
        print(f"{store.safe_url}: cannot open: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_DATABASE
    try:
        server = waitress.create_server(app, host=args.host, port=args.port, threads=8, ident="qr-collector")
    except OSError as exc:
        store.close()
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_LISTEN
    address = f"http://{args.host}:{args.port}/"
    server.print_listen("Serving on http://{}:{}")  # waitress's own line, as `waitress.serve` logs it
    print(f"web page on {address}", file=sys.stderr, flush=True)
    # Ready once the socket listens: `systemctl start` returns when the page answers.
    notifier = Notifier.from_env()
    notifier.ready(f"serving {address}")
    # systemd stops with SIGTERM: leave through the finally below, so it hears STOPPING and exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    finally:
        notifier.stopping()
        store.close()
    return 0
