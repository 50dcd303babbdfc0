"""`qr-checkin run`: the daemon."""

from __future__ import annotations

import argparse
import logging
import sys

from device.commands import add_config_argument
from device.errors import ConfigError
from device.settings import load_settings

HELP = "run the check-in daemon"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    # The journal stamps time and unit itself; one line per event, level first for `journalctl -p`.
    logging.basicConfig(
        level=settings.logging.level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    from device.daemon import run

    try:
        return run(settings)
    except ConfigError as exc:  # found only when a source or the feedback opens its hardware
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
