"""Subcommand tools built one way: a registry of command name -> (module, help).

A command module exposes `add_arguments(parser)` and `main(args) -> int`. Only the module of the
command being run is imported, so `qr-checkin decode` does not pay for paho, `run` does not pay for
the camera stack, and `--help` imports none of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from device import __version__


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
    return int(args._main(args))
