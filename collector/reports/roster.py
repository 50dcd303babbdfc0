"""The enterprise's roster: who should scan, by employee number, team, line and assigned bus or gate.

HR's file carries ID numbers (CCCD, the BHXH number of the BHYT card, the QID of the personal QR);
they become the site's pseudonyms at import, HMAC-SHA256(site key, "<type>:<normalised id>") exactly as
a device computes them (device/privacy.py), and are dropped: the database never holds them. The display
name is personal data too, so it is stored sealed (SecretBox) under a key derived from the site key:
reports open it, a dump of the database shows none.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from collector.reports import tables as rt
from collector.store import Store
from device.payloads import bhyt, cccd, personal
from device.privacy import Privacy

# The columns of HR's file, with the headings people write (English and Vietnamese), compared
# case-insensitively, an underscore as a space.
HEADINGS: dict[str, tuple[str, ...]] = {
    "employee_no": ("employee_no", "employee", "employee number", "mã nv", "mã nhân viên", "manv"),
    "name": ("name", "display_name", "display name", "họ tên", "họ và tên", "hoten"),
    "team": ("team", "tổ", "to", "bộ phận", "phòng ban"),
    "line": ("line", "chuyền", "dây chuyền", "phân xưởng"),
    "assigned": ("assigned", "bus", "gate", "plate", "xe", "cổng", "biển số", "xe/cổng"),
    "cccd": ("cccd", "cccd number", "số cccd", "căn cước"),
    "bhxh": ("bhxh", "bhxh number", "bhyt", "số bhxh", "mã số bhxh", "số thẻ bhyt"),
    "qid": ("qid", "personal qr", "personal_qid", "mã qr cá nhân"),
}
ID_COLUMNS = {"cccd": "cccd", "bhxh": "bhyt", "qid": "personal"}
_SEPARATORS = re.compile(r"[\s.\-]")
_NAME_KEY_LABEL = b"qr-collector roster names v1"


class RosterError(ValueError):
    """The file cannot be read as a roster at all (no row was imported)."""


def _heading(text: str) -> str:
    return " ".join(str(text or "").strip().casefold().replace("_", " ").split())


def normalise(code_type: str, raw: str | int) -> str:
    """The subject id a device would derive from the card, from the number HR typed; ValueError if none.

    bhyt: the 10-digit BHXH number (a 15-character card number gives its last 10 digits, as on the card);
    cccd: the 12-digit number; personal: the QID. Spaces, dots and dashes are ignored. A spreadsheet cell
    holding a number has lost the leading zeros: a CCCD or BHXH number gets them back; a QID (18 digits)
    is past what a spreadsheet number keeps exactly and is refused.
    """
    if isinstance(raw, int):
        if code_type == "personal":
            raise ValueError(
                "QID typed as a number (a spreadsheet keeps 15 digits): format the column as text"
            )
        raw = str(raw).zfill(bhyt.BHXH_DIGITS if code_type == "bhyt" else 12)
    text = _SEPARATORS.sub("", raw)
    if code_type == "bhyt":
        # The card parser's own patterns: what a scan of this person's card yields as subject.
        if not (bhyt._CARD_V1.fullmatch(text) or bhyt._CARD_V2.fullmatch(text)):
            raise ValueError("BHXH number: expected 10 digits (or the card's 2 letters and 13 digits)")
        return text[-bhyt.BHXH_DIGITS :]
    if code_type == "cccd":
        if not cccd._ID.fullmatch(text):
            raise ValueError("CCCD number: expected 12 digits")
        return text
    if code_type == personal.TYPE:
        if not personal._QID.fullmatch(text):
            low, high = personal.QID_DIGITS
            raise ValueError(f"QID: expected the personal QR's identifier ({low} to {high} digits)")
        return text
    raise ValueError(f"unknown code type {code_type!r}")


class NameBox:
    """Seals and opens display names with a key derived from the site key (never the key itself)."""

    def __init__(self, site_key: bytes) -> None:
        self._box = SecretBox(hmac.new(site_key, _NAME_KEY_LABEL, hashlib.sha256).digest())

    def seal(self, name: str) -> str:
        return base64.b64encode(self._box.encrypt(name.encode())).decode()

    def open(self, sealed: str | None) -> str | None:
        if not sealed:
            return None
        try:
            return self._box.decrypt(base64.b64decode(sealed)).decode()
        except (CryptoError, ValueError):
            return "(name sealed under another site key)"


@dataclass(frozen=True)
class BadRow:
    line: int
    employee_no: str | None
    reason: str


@dataclass
class ImportResult:
    imported: int = 0
    subjects: int = 0
    bad: list[BadRow] = field(default_factory=list)
    key_id: str = ""


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str | int]]]:
    """(line number, {column: value}) for each data row of a .csv (UTF-8, BOM or not) or .xlsx file;
    a value is text, or an int where a spreadsheet cell held a whole number."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw = _csv_rows(path)
    elif suffix in (".xlsx", ".xlsm"):
        raw = _xlsx_rows(path)
    else:
        raise RosterError(f"{path}: a roster is a .csv or .xlsx file")
    try:
        header = next(raw)
    except StopIteration:
        raise RosterError(f"{path}: the file is empty") from None
    columns: dict[int, str] = {}
    for i, text in enumerate(header):
        key = _heading(str(text))
        for name, headings in HEADINGS.items():
            if key in {_heading(h) for h in headings} and name not in columns.values():
                columns[i] = name
    if "employee_no" not in columns.values():
        raise RosterError(f"{path}: no employee number column (a heading such as employee_no or Mã NV)")
    if not set(ID_COLUMNS) & set(columns.values()):
        raise RosterError(f"{path}: no ID column (cccd, bhxh or qid): nobody could be matched to a scan")
    for number, cells in enumerate(raw, start=2):
        row = {
            name: cells[i] if isinstance(cells[i], int) else str(cells[i]).strip()
            for i, name in columns.items()
            if i < len(cells) and cells[i] not in (None, "")
        }
        if any(row.values()):
            yield number, row


def _csv_rows(path: Path) -> Iterator[list[str | int]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample else csv.excel
            for cells in csv.reader(fh, dialect):
                yield list(cells)
    except UnicodeDecodeError:
        raise RosterError(f"{path}: not UTF-8 (save the sheet as 'CSV UTF-8')") from None
    except OSError as exc:
        raise RosterError(f"{path}: cannot read: {exc.strerror}") from None


def _xlsx_rows(path: Path) -> Iterator[list[str | int]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors for a bad file
        raise RosterError(f"{path}: not a readable .xlsx file ({type(exc).__name__})") from None
    try:
        for values in book.worksheets[0].iter_rows(values_only=True):
            yield [_cell(v) for v in values]
    finally:
        book.close()


def _cell(value: object) -> str | int:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return str(value)


def import_roster(store: Store, path: Path, site_key: bytes, *, wall: float) -> ImportResult:
    """Replaces the roster with the file's good rows, in one transaction; bad rows are named, skipped."""
    privacy = Privacy("hmac", site_key)
    names = NameBox(site_key)
    result = ImportResult(key_id=privacy.key_id or "")
    people: list[dict[str, object]] = []
    subjects: list[dict[str, str]] = []
    seen_numbers: set[str] = set()
    owner: dict[str, str] = {}
    now = dt.datetime.fromtimestamp(wall, dt.UTC)
    for line, cells in read_rows(path):
        ids = {k: cells[k] for k in ID_COLUMNS if k in cells}
        row = {k: str(v) for k, v in cells.items() if k not in ID_COLUMNS}
        number = row.get("employee_no", "")
        try:
            if not number:
                raise ValueError("no employee number")
            if len(number) > 32:
                raise ValueError("employee number longer than 32 characters")
            if number in seen_numbers:
                raise ValueError("employee number already on an earlier row")
            mine: list[dict[str, str]] = []
            for column, code_type in ID_COLUMNS.items():
                if column in ids:
                    subject = privacy.pseudonym(code_type, normalise(code_type, ids[column]))
                    if subject in owner or any(s["subject_hmac"] == subject for s in mine):
                        raise ValueError(f"{column} number already belongs to employee {owner.get(subject)}")
                    mine.append({"subject_hmac": subject, "employee_no": number, "code_type": code_type})
            if not mine:
                raise ValueError("no ID number (cccd, bhxh or qid)")
            for key, limit in (("team", 100), ("line", 100), ("assigned", 64)):
                if len(row.get(key, "")) > limit:
                    raise ValueError(f"{key} longer than {limit} characters")
        except ValueError as exc:
            result.bad.append(BadRow(line, number or None, str(exc)))
            continue
        seen_numbers.add(number)
        owner.update((s["subject_hmac"], number) for s in mine)
        subjects.extend(mine)
        people.append(
            {
                "employee_no": number,
                "name_box": names.seal(row["name"]) if row.get("name") else None,
                "team": row.get("team") or None,
                "line": row.get("line") or None,
                "assigned": row.get("assigned") or None,
                "key_id": privacy.key_id,
                "imported_at": now,
            }
        )
    with store.engine.begin() as conn:
        conn.execute(sa.delete(rt.roster_subjects))
        conn.execute(sa.delete(rt.roster))
        if people:
            conn.execute(sa.insert(rt.roster), people)
            conn.execute(sa.insert(rt.roster_subjects), subjects)
    result.imported, result.subjects = len(people), len(subjects)
    return result


@dataclass
class Person:
    employee_no: str
    name: str | None
    team: str | None
    line: str | None
    assigned: str | None
    subjects: list[str] = field(default_factory=list)


@dataclass
class Roster:
    people: dict[str, Person]
    by_subject: dict[str, str]
    key_id: str | None

    def person_of(self, subject: str) -> Person | None:
        number = self.by_subject.get(subject)
        return None if number is None else self.people[number]

    def find(self, employee_no: str) -> Person | None:
        return self.people.get(employee_no)


def load_roster(store: Store, site_key: bytes | None) -> Roster:
    """The roster with names opened (None without the site key)."""
    names = NameBox(site_key) if site_key else None
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(rt.roster)).mappings().all()
        links = conn.execute(
            sa.select(rt.roster_subjects.c.subject_hmac, rt.roster_subjects.c.employee_no)
        ).all()
    people = {
        r["employee_no"]: Person(
            r["employee_no"],
            names.open(r["name_box"]) if names else None,
            r["team"],
            r["line"],
            r["assigned"],
        )
        for r in rows
    }
    by_subject: dict[str, str] = {}
    for subject, number in links:
        by_subject[subject] = number
        people[number].subjects.append(subject)
    key_id = rows[0]["key_id"] if rows else None
    return Roster(people, by_subject, key_id)


def subjects_of(people: Sequence[Person]) -> list[str]:
    return [s for p in people for s in p.subjects]
