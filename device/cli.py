"""`qr-checkin` command line: one subcommand per module under device/commands/."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from device.commandline import Command, dispatch

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
