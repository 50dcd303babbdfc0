"""`qr-collector` command line: one subcommand per module under collector/commands/."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from device.commandline import Command, dispatch

COMMANDS = {
    "run": Command("collector.commands.run", "ingest check-ins from the broker into the database"),
    "status": Command(
        "collector.commands.status", "print the counters, lag, devices and open gaps from the database"
    ),
    "gaps": Command(
        "collector.commands.gaps", "list the open gaps, repaired gaps and known losses per device"
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("qr-collector", "Central collector of qr-checkin events.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
