"""`qr-checkin check-config`: validate a configuration and print the effective one.

Beyond what the settings themselves validate, it checks what the daemon checks at start against the
machine: in privacy mode `collector` the duplicate-window key must live in memory. A
`privacy.window_key_dir` that names a directory on a disk is an error outside development mode, as
it is to the daemon, which refuses to start (a check that passes what the daemon then refuses is worse
than none). The default (systemd's RuntimeDirectory under /run) gets a warning only: /run is a tmpfs
on every system the unit is for, so a /run that is not one means check-config runs elsewhere (a
workstation checking a provisioned card, a container), where this machine's /run says nothing about
the device's. In development mode the daemon only warns, and so does this.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from device.commands import EXIT_CONFIG, add_config_argument, load_or_explain
from device.privacy import DEFAULT_RUNTIME_DIR, IN_MEMORY_FILESYSTEMS, filesystem_type, window_key_dir
from device.settings import ENV_PREFIX, Settings

WINDOW_KEY_DIR_ENV = f"{ENV_PREFIX}PRIVACY__WINDOW_KEY_DIR"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    if problem := window_key_problem(settings, args.config):
        if settings.device.dev:
            print(
                f"{args.config}: warning: {problem} (device.dev: the daemon starts anyway)", file=sys.stderr
            )
        elif settings.privacy.window_key_dir is not None:
            print(f"{args.config}: error: {problem}; the daemon refuses to start", file=sys.stderr)
            return EXIT_CONFIG
        else:
            print(
                f"{args.config}: warning: {problem}; a daemon started on this machine refuses to start"
                " (on the device /run is a tmpfs)",
                file=sys.stderr,
            )
    effective = settings.redacted()
    effective["config_hash"] = settings.config_hash()
    print(json.dumps(effective, indent=2, ensure_ascii=False))
    return 0


def window_key_problem(settings: Settings, config: str) -> str | None:
    """Why mode collector's window key would not be in memory where this configuration puts it."""
    if settings.privacy.subject != "collector":
        return None
    directory = window_key_dir(settings)
    fstype = filesystem_type(directory)
    if fstype in IN_MEMORY_FILESYSTEMS:
        return None
    if os.environ.get(WINDOW_KEY_DIR_ENV):
        origin = f"privacy.window_key_dir = {directory} (environment {WINDOW_KEY_DIR_ENV})"
    elif settings.privacy.window_key_dir is not None:
        origin = f"privacy.window_key_dir = {directory} (in {config})"
    else:
        origin = f"privacy.window_key_dir is not set, so the key goes to {directory}"
    return (
        f"{origin} is on {fstype or 'an unknown filesystem'}, not in memory"
        f" ({', '.join(sorted(IN_MEMORY_FILESYSTEMS))}): mode collector's duplicate-window key would"
        f" outlive a power cut on the card, and a stolen card would carry it. Point it at a tmpfs"
        f" (systemd's RuntimeDirectory, {DEFAULT_RUNTIME_DIR})"
    )
