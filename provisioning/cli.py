"""`qr-provision` command line: `device`, `batch` and `verify`, one module each.

Each command module exposes `HELP`, `add_arguments(parser)` and `main(args) -> int`, the pattern of
`qr-checkin`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from device import __version__

COMMANDS: dict[str, str] = {
    "device": "provisioning.single",
    "batch": "provisioning.batch",
    "verify": "provisioning.verify",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qr-provision", description="Provision qr-checkin devices: configs, credentials, labels, proof."
    )
    parser.add_argument("--version", action="version", version=f"qr-provision {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_main=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._main(args))


if __name__ == "__main__":
    sys.exit(main())
