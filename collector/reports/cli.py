"""What the reports' commands share: the database, the roster, the output and audit options."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from collector.commands import EXIT_CONFIG, add_config_argument, load_or_explain
from collector.commands.status import EXIT_NO_DATABASE, open_store
from collector.reports import audit
from collector.reports.common import ReportError
from collector.reports.roster import Roster, load_roster
from collector.settings import Settings
from collector.store import Store
from device.errors import ConfigError
from device.privacy import load_key

EXIT_USAGE = 2


class Failed(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def add_format(parser: argparse.ArgumentParser, formats: tuple[str, ...], default: str = "table") -> None:
    parser.add_argument(
        "--format", choices=formats, default=default, help=f"output format (default {default})"
    )
    parser.add_argument(
        "--output", "-o", metavar="FILE", help="write to FILE (needed for xlsx; default: standard output)"
    )


def add_audit(
    parser: argparse.ArgumentParser, *, purpose: str = "--purpose", role: str | None = "hr"
) -> None:
    parser.add_argument(
        purpose,
        required=True,
        dest="purpose",
        help="why: the case number or the reason (written to the audit log)",
    )
    parser.add_argument("--who", default=audit.default_actor(), help="who asks (default: the login name)")
    if role is not None:
        parser.add_argument(
            "--role", choices=audit.ROLES, default=role, help=f"the asker's role (default {role})"
        )


def site_key(settings: Settings, *, required: bool) -> bytes | None:
    path = settings.privacy.site_key_file
    if path is None:
        if required:
            raise ConfigError(
                "privacy.site_key_file is not configured: the roster's ID numbers need the site key"
            )
        return None
    return load_key(path, create=False)


@contextmanager
def opened(args: argparse.Namespace) -> Iterator[tuple[Settings, Store]]:
    """The settings and the database; Failed(code) after saying why they cannot be used."""
    settings = load_or_explain(args.config)
    if settings is None:
        raise Failed(EXIT_CONFIG)
    store = open_store(settings.database_url)
    if store is None:
        raise Failed(EXIT_NO_DATABASE)
    try:
        yield settings, store
    finally:
        store.close()


def roster_of(settings: Settings, store: Store) -> Roster:
    return load_roster(store, site_key(settings, required=False))


def command(body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command's main: configuration and report errors become a message and an exit code."""

    def main(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except Failed as exc:
            return exc.code
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return EXIT_CONFIG
        except (ReportError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return main


def local(value: dt.datetime | None, tz: dt.tzinfo) -> str | None:
    return None if value is None else value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def add_config(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
