"""Accounts of the web page: a name, a role, an argon2id password hash; the session signing key.

Roles (collector/reports/audit.py ROLES): `hr` and `authority` see people (names, employee numbers,
masked ids) and may export and trace; `board` (the park's board) and `auditor` see counts only, cells
under SUPPRESS_BELOW people suppressed; `auditor` and `authority` read the audit log.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from collector.reports.audit import ROLES
from collector.store import Store
from collector.web.tables import web_secrets, web_users

PEOPLE_ROLES = frozenset({"hr", "authority"})
TRACE_ROLES = frozenset({"hr", "authority"})
AUDIT_ROLES = frozenset({"auditor", "authority"})
SUPPRESS_BELOW = 5
MIN_PASSWORD = 10
NAME_MAX = 64

# argon2-cffi's defaults are RFC 9106's second recommendation (argon2id, 64 MiB, t=3, p=4).
_hasher = PasswordHasher()
# Verified when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = _hasher.hash(secrets.token_hex(16))


class AccountError(ValueError):
    """An account cannot be made as asked: the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def sees_people(self) -> bool:
        return self.role in PEOPLE_ROLES


def add_user(store: Store, name: str, role: str, password: str, *, wall: float, replace: bool) -> User:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if not name or len(name) > NAME_MAX or not name.isprintable() or name.strip() != name:
        raise AccountError(f"a name is 1 to {NAME_MAX} printable characters without surrounding spaces")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    row = {
        "name": name,
        "role": role,
        "password_hash": _hasher.hash(password),
        "created_at": dt.datetime.fromtimestamp(wall, dt.UTC),
    }
    u = web_users.c
    with store.engine.begin() as conn:
        exists = conn.execute(sa.select(u.name).where(u.name == name)).first() is not None
        if exists and not replace:
            raise AccountError(f"user {name!r} exists (--replace sets a new role and password)")
        if exists:
            conn.execute(sa.update(web_users).where(u.name == name).values(**row))
        else:
            conn.execute(sa.insert(web_users), row)
    return User(name, role)


def remove_user(store: Store, name: str) -> bool:
    with store.engine.begin() as conn:
        return conn.execute(sa.delete(web_users).where(web_users.c.name == name)).rowcount > 0


def users(store: Store) -> list[User]:
    u = web_users.c
    with store.engine.connect() as conn:
        return [User(n, r) for n, r in conn.execute(sa.select(u.name, u.role).order_by(u.name))]


def find(store: Store, name: str) -> User | None:
    u = web_users.c
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(u.name, u.role).where(u.name == name)).first()
    return None if row is None else User(row.name, row.role)


def authenticate(store: Store, name: str, password: str) -> User | None:
    u = web_users.c
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(u.name, u.role, u.password_hash).where(u.name == name)).first()
    try:
        _hasher.verify(row.password_hash if row else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        with store.engine.begin() as conn:
            conn.execute(
                sa.update(web_users).where(u.name == name).values(password_hash=_hasher.hash(password))
            )
    return User(row.name, row.role)


def secret_key(store: Store) -> str:
    """The session signing key, made once per database (the first instance to start wins)."""
    s = web_secrets.c
    query = sa.select(s.value).where(s.name == "session")
    try:
        with store.engine.begin() as conn:
            value = conn.execute(query).scalar()
            if value is None:
                value = secrets.token_hex(32)
                conn.execute(sa.insert(web_secrets), {"name": "session", "value": value})
    except sa.exc.IntegrityError:  # another instance made it first: use theirs
        with store.engine.connect() as conn:
            value = conn.execute(query).scalar_one()
    return str(value)
