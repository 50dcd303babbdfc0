"""`qr-provision` command line: `device`, `batch` and `verify`, one module each.

Each command module exposes `add_arguments(parser)` and `main(args) -> int`, the pattern of
`qr-checkin` (device/cli.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from device.cli import Command, dispatch

COMMANDS = {
    "device": Command(
        "provisioning.single", "provision one device (a bus by --plate, a door or gate by --location-id)"
    ),
    "batch": Command(
        "provisioning.batch",
        "provision a fleet from a CSV file: bundles, broker ACL and password file, a sheet of labels",
    ),
    "verify": Command(
        "provisioning.verify",
        "prove that a device is online at the broker with the configuration it was provisioned with",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(
        "qr-provision", "Provision qr-checkin devices: configs, credentials, labels, proof.", COMMANDS, argv
    )


if __name__ == "__main__":
    sys.exit(main())
