"""`qr-collector users add NAME --role ROLE | list | remove NAME`: the web page's accounts.

The password comes from a prompt (asked twice) or, when standard input is not a terminal, from its
first line, so a script can pipe it in without putting it on a command line.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from collector.commands import EXIT_CONFIG, load_or_explain
from collector.reports.audit import ROLES
from collector.reports.cli import Failed, add_config, command
from collector.store import Store
from collector.web import accounts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="add an account (or --replace its role and password)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", choices=ROLES, required=True, help="hr, board, authority or auditor")
    add.add_argument("--replace", action="store_true", help="set a new role and password if NAME exists")
    listing = sub.add_parser("list", help="list the accounts and their roles")
    remove = sub.add_parser("remove", help="remove an account")
    remove.add_argument("name", metavar="NAME")
    for each in (add, listing, remove):
        add_config(each)


def read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


@command
def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        raise Failed(EXIT_CONFIG)
    store = Store(settings.database_url)
    try:
        # Accounts may come before the first `qr-collector run`: the schema is made here too.
        store.migrate()
        if args.action == "list":
            for user in accounts.users(store):
                print(f"{user.name}\t{user.role}")
            return 0
        if args.action == "remove":
            if not accounts.remove_user(store, args.name):
                raise ValueError(f"no user {args.name!r}")
            print(f"user {args.name} removed")
            return 0
        user = accounts.add_user(
            store, args.name, args.role, read_password(), wall=time.time(), replace=args.replace
        )
    finally:
        store.close()
    print(f"user {user.name} ({user.role}) saved; the password is stored as an argon2id hash")
    return 0
