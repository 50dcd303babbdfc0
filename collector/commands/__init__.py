"""The subcommands of `qr-collector`, one module each (see collector/cli.py)."""

from __future__ import annotations

import argparse
import sys

from collector.settings import DEFAULT_CONFIG, Settings, load_settings
from device.errors import ConfigError

# As the device's commands: a configuration it cannot use (systemd does not restart on it).
EXIT_CONFIG = 2


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG),
        metavar="PATH",
        help=f"collector configuration (default {DEFAULT_CONFIG})",
    )


def load_or_explain(path: str) -> Settings | None:
    """The settings, or None after printing why they cannot be used (the key and the file)."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
