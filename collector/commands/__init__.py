"""The subcommands of `qr-collector`, one module each (see collector/cli.py)."""

from __future__ import annotations

import argparse
import logging
import sys

from collector.settings import DEFAULT_CONFIG, Settings, load_settings
from device import cli as commandline

# As the device's commands: a configuration it cannot use (systemd does not restart on it).
EXIT_CONFIG = 2


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    commandline.add_config_argument(parser, DEFAULT_CONFIG, "collector")


def load_or_explain(path: str) -> Settings | None:
    """The settings, or None after printing why they cannot be used (the key and the file)."""
    return commandline.load_or_explain(load_settings, path)


def start_logging(settings: Settings) -> None:
    """The long-running commands log to stderr (the journal under systemd) at `[logging] level`."""
    logging.basicConfig(
        level=settings.logging.level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
