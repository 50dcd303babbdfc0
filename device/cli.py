"""`qr-checkin` command line: one subcommand per module under device/commands/.

Each command module exposes `HELP: str`, `add_arguments(parser)` and `main(args) -> int`; modules are
imported only when their command runs, so `qr-checkin decode` does not pay for paho and `run` does
not pay for the camera stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from device import __version__

# command name -> module; keep sorted by how often a technician types them.
COMMANDS: dict[str, str] = {
    "run": "device.commands.run",
    "status": "device.commands.status",
    "history": "device.commands.history",
    "check-config": "device.commands.check_config",
    "inspect": "device.commands.inspect",
    "selftest": "device.commands.selftest",
    "decode": "device.commands.decode",
    "scanners": "device.commands.scanners",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qr-checkin", description="QR check-in reader for doors and buses.")
    parser.add_argument("--version", action="version", version=f"qr-checkin {__version__}")
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
