"""`qr-checkin` command line: the command table below, one subcommand per module under
device/commands/ (their shared helpers in its __init__).

The dispatcher is shared with `qr-collector` (collector/cli.py) and `qr-provision`
(provisioning/cli.py): a registry of command name -> (module, help). A command module exposes
`add_arguments(parser)` and `main(args) -> int`. Only the module of the command being run is
imported, so `qr-checkin decode` does not pay for paho, `run` does not pay for the camera stack, and
`--help` imports none of them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

from device import __version__
from device.errors import ConfigError

T = TypeVar("T")


class Command(NamedTuple):
    module: str
    help: str


def build_parser(
    prog: str, description: str, commands: Mapping[str, Command], argv: Sequence[str]
) -> argparse.ArgumentParser:
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in commands.items():
        cmd = sub.add_parser(name, help=command.help, description=command.help)
        if name == chosen:
            module = importlib.import_module(command.module)
            module.add_arguments(cmd)
            cmd.set_defaults(_main=module.main)
    return parser


def dispatch(prog: str, description: str, commands: Mapping[str, Command], argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog, description, commands, arguments).parse_args(arguments)
    try:
        return int(args._main(args))
    finally:
        # Whatever a command left in stdout's buffer: a reader gone by now (a closed pipe, `| head`)
        # would otherwise make the interpreter's own final flush fail, and the exit status 120.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            stdout_gone()


def stdout_gone() -> None:
    """stdout's reader left: what is still written goes nowhere, quietly, to the end of the process."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def add_config_argument(parser: argparse.ArgumentParser, default: Path, what: str) -> None:
    parser.add_argument(
        "--config", default=str(default), metavar="PATH", help=f"{what} configuration (default {default})"
    )


def load_or_explain(load: Callable[[str], T], path: str) -> T | None:
    """The settings, or None after printing why they cannot be used (the key and the file)."""
    try:
        return load(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


# Sorted by how often a technician types them.
COMMANDS = {
    "run": Command("device.commands.run", "run the check-in daemon"),
    "status": Command(
        "device.commands.status",
        "print the device's state from its store: backlog, counters, scanners, disk, clock",
    ),
    "history": Command(
        "device.commands.history",
        "list the check-ins still kept on the device (masked as the privacy mode says) as CSV or JSON",
    ),
    "dead-letters": Command(
        "device.commands.dead_letters",
        "list the events the broker refused for good (`--retry`: send them again)",
    ),
    "check-config": Command(
        "device.commands.check_config",
        "validate the configuration and print the effective settings (secrets hidden)",
    ),
    "inspect": Command(
        "device.commands.inspect",
        "judge QR payloads (arguments, or JSON strings on stdin) and print the verdicts as JSON lines",
    ),
    "selftest": Command(
        "device.commands.selftest",
        "play every feedback pattern and check the broker; exit 0 when all checks pass",
    ),
    "decode": Command(
        "device.commands.decode",
        "decode QR codes in image files exactly as the camera does (`--json`: one line per file)",
    ),
    "scanners": Command(
        "device.commands.scanners",
        "list attached USB scanners (keyboard and serial mode) and the config line for each",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("qr-checkin", "QR check-in reader for doors and buses.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
