"""The subcommands of `qr-checkin`, one module each (see device/cli.py)."""

from __future__ import annotations

import argparse

from device.settings import DEFAULT_CONFIG


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG),
        metavar="PATH",
        help=f"device configuration (default {DEFAULT_CONFIG})",
    )
