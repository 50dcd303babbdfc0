"""The subcommands of `qr-checkin`, one module each (the table is device/cli.py), and what they share."""

from __future__ import annotations

import argparse
import sys

from device import cli
from device.errors import StorageError
from device.settings import DEFAULT_CONFIG, Settings, load_settings
from device.store import DB_NAME, StoreReader

# Exit code of every command for a configuration it cannot use (systemd does not restart on it).
EXIT_CONFIG = 2
# Exit code of the commands that read the store, for a store that is missing or unreadable.
EXIT_NO_STORE = 1


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    cli.add_config_argument(parser, DEFAULT_CONFIG, "device")


def load_or_explain(path: str) -> Settings | None:
    """The settings, or None after printing why they cannot be used (the key and the file)."""
    return cli.load_or_explain(load_settings, path)


def open_reader(settings: Settings) -> StoreReader | None:
    """The store, opened for reading only; None after printing why it cannot be read."""
    path = settings.storage.dir / DB_NAME
    if not path.is_file():
        print(
            f"no store at {path}: the daemon has not run with this configuration's storage.dir"
            " (nothing was created)",
            file=sys.stderr,
        )
        return None
    try:
        return StoreReader(path)
    except StorageError as exc:
        print(f"cannot read the store: {exc}", file=sys.stderr)
        return None
