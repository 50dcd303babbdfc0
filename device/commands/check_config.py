"""`qr-checkin check-config`: validate a configuration and print the effective one."""

from __future__ import annotations

import argparse
import json
import sys

from device.commands import add_config_argument
from device.errors import ConfigError
from device.settings import load_settings

HELP = "validate the configuration and print the effective settings (secrets hidden)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    effective = settings.redacted()
    effective["config_hash"] = settings.config_hash()
    print(json.dumps(effective, indent=2, ensure_ascii=False))
    return 0
