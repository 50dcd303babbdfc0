"""`qr-collector` command line: one subcommand per module under collector/commands/."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from device.cli import Command, dispatch

COMMANDS = {
    "run": Command("collector.commands.run", "ingest check-ins from the broker into the database"),
    "status": Command(
        "collector.commands.status", "print the counters, lag, devices and open gaps from the database"
    ),
    "gaps": Command(
        "collector.commands.gaps", "list the open gaps, repaired gaps and known losses per device"
    ),
    "locations": Command(
        "collector.commands.locations", "list the check-in locations with address, devices, state"
    ),
    "roster": Command(
        "collector.commands.roster", "import the roster (ID numbers become pseudonyms, never stored)"
    ),
    "compliance": Command(
        "collector.commands.compliance", "who scanned on a day, who did not, who is unknown"
    ),
    "trace": Command("collector.commands.trace", "everyone co-present with a person, by location (audited)"),
    "export": Command("collector.commands.export", "the scan history as CSV or XLSX, masked (audited)"),
    "reveal": Command(
        "collector.commands.reveal", "the authority opens sealed subjects for a case (audited)"
    ),
    "audit": Command("collector.commands.audit", "verify or list the hash-chained audit log"),
    "retention": Command(
        "collector.commands.retention", "remove raw events past retention, keep half-hour counts"
    ),
    "users": Command("collector.commands.users", "add, list or remove the web page's accounts"),
    "web": Command("collector.commands.web", "serve the safety office's web page"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("qr-collector", "Central collector of qr-checkin events.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
