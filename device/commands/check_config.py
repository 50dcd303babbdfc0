"""`qr-checkin check-config`: validate a configuration and print the effective one."""

from __future__ import annotations

import argparse
import json

from device.commands import EXIT_CONFIG, add_config_argument, load_or_explain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    effective = settings.redacted()
    effective["config_hash"] = settings.config_hash()
    print(json.dumps(effective, indent=2, ensure_ascii=False))
    return 0
