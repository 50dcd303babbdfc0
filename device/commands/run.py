"""`qr-checkin run`: the daemon."""

from __future__ import annotations

import argparse
import logging
import sys

from device.commands import EXIT_CONFIG, add_config_argument, load_or_explain
from device.errors import ConfigError
from device.printable import PrintableFormatter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    # The journal stamps time and unit itself; one line per event, level first for `journalctl -p`.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.logging.level, handlers=[handler])
    from device.daemon import run

    try:
        return run(settings)
    except ConfigError as exc:  # found only when a source or the feedback opens its hardware
        print(f"{args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
