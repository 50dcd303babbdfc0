"""The higher level sees in full, nobody else: opening the subjects devices sealed for the authority.

A device in `sealed` mode (or `collector` mode with an authority key) adds `subject.sealed`, a libsodium
sealed box to the health authority's public key holding the type, the number and, for cards, the name
and birth year. The collector stores the box and cannot open it. The authority opens it here with its
private key, given for this run only and never stored; what it reveals is printed, never written to the
database, and the act is in the audit log (collector/reports/audit.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from collector import tables as t
from collector.reports.common import ReportError, aware
from collector.store import Store


@dataclass
class Revealed:
    subject: str
    masked: str | None
    # None when no event of the subject carried a box this key opens.
    code_type: str | None
    id_number: str | None
    name: str | None
    birth_year: int | None
    events: int
    first_at: dt.datetime | None
    last_at: dt.datetime | None
    # Boxes found that this key does not open (sealed for another authority key).
    unopened: int = 0


def authority_key(text: str) -> SealedBox[PrivateKey]:
    try:
        return SealedBox(PrivateKey(base64.b64decode(text.strip(), validate=True)))
    except (ValueError, TypeError) as exc:
        raise ReportError(f"the authority's private key is not a base64 X25519 key: {exc}") from None


def reveal(
    store: Store,
    box: SealedBox[PrivateKey],
    subjects: Sequence[str],
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> list[Revealed]:
    """Per subject: the identity its sealed boxes hold (the first box that opens), and its scans."""
    if not subjects:
        raise ReportError("name at least one subject to reveal")
    e = t.events.c
    query = sa.select(e.subject_hmac, e.masked, e.scanned_at, e.body).where(
        e.subject_hmac.in_(list(subjects))
    )
    if start is not None:
        query = query.where(e.scanned_at >= start)
    if end is not None:
        query = query.where(e.scanned_at < end)
    out = {s: Revealed(s, None, None, None, None, None, 0, None, None) for s in subjects}
    with store.engine.connect() as conn:
        for subject, masked, at, body in conn.execute(query.order_by(e.scanned_at)):
            r = out[subject]
            at = aware(at)
            r.events += 1
            r.masked = masked or r.masked
            r.first_at = r.first_at or at
            r.last_at = at
            sealed = _sealed(body)
            if sealed is None or r.id_number is not None:
                continue
            try:
                record = json.loads(box.decrypt(base64.b64decode(sealed)))
            except (CryptoError, ValueError):
                r.unopened += 1
                continue
            r.code_type = record.get("type")
            r.id_number = record.get("id")
            r.name = record.get("name")
            birth = record.get("birth_year")
            r.birth_year = birth if isinstance(birth, int) else None
    return [out[s] for s in subjects]


def _sealed(body: Any) -> str | None:
    if isinstance(body, str):  # a JSON column read back as text by an older driver
        body = json.loads(body)
    subject = body.get("subject") if isinstance(body, dict) else None
    sealed = subject.get("sealed") if isinstance(subject, dict) else None
    return sealed if isinstance(sealed, str) else None
