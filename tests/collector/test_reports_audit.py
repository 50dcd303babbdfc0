"""The authority's reveal and the hash-chained, append-only audit log, over SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector import tables as t
from collector.reports import audit
from collector.reports import roster as r
from collector.reports.tables import audit_log
from device.privacy import load_key
from tests.support.collector import cli_text, run_cli
from tests.support.reports_site import (
    TRACED,
    TWO_CODES,
    TWO_CODES_BHXH,
    TWO_CODES_QID,
    VISITOR_CCCD,
    Site,
    employee,
)


def key_file(s: Site, path: Path) -> Path:
    path.write_text(base64.b64encode(bytes(s.authority)).decode() + "\n")
    path.chmod(0o600)
    return path


def test_the_authority_reveals_a_visitor_for_a_case_and_the_database_keeps_no_number(
    site: Site, tmp_path: Path
) -> None:
    visitor = site.pseudonym("cccd", VISITOR_CCCD)
    out = cli_text(
        "reveal",
        "--config",
        str(site.settings_file()),
        "--private-key-file",
        str(key_file(site, tmp_path / "ha.key")),
        "--case",
        "F0-2021-0042",
        "--who",
        "tracer1",
        "--subject",
        visitor,
        "--format",
        "json",
    )
    found = json.loads(out)
    assert [(f["subject"], f["code_type"], f["id_number"], f["events"]) for f in found] == [
        (visitor, "cccd", VISITOR_CCCD, 2)
    ]
    entry = audit.entries(site.store(), 1)[0]
    assert (entry.action, entry.role, entry.purpose, entry.actor, entry.row_count) == (
        "reveal",
        "authority",
        "F0-2021-0042",
        "tracer1",
        1,
    )
    assert VISITOR_CCCD not in entry.query
    # What was revealed was printed, never written: no ID number anywhere in the database.
    store = site.store()
    with store.engine.connect() as conn:
        for table in (t.events, t.devices, audit_log):
            dump = json.dumps([list(row) for row in conn.execute(sa.select(table))], default=str)
            assert VISITOR_CCCD not in dump and TWO_CODES_BHXH not in dump and TWO_CODES_QID not in dump


def test_reveal_by_employee_opens_every_code_of_the_person(site: Site, tmp_path: Path) -> None:
    r.import_roster(site.store(), site.roster_file(), load_key(site.key_file, create=False), wall=time.time())
    out = cli_text(
        "reveal",
        "--config",
        str(site.settings_file()),
        "--private-key-file",
        str(key_file(site, tmp_path / "ha.key")),
        "--case",
        "F0-2021-0043",
        "--employee",
        employee(TWO_CODES),
        "--format",
        "json",
    )
    opened = {(f["code_type"], f["id_number"]) for f in json.loads(out) if f["id_number"]}
    assert opened == {("bhyt", TWO_CODES_BHXH), ("personal", TWO_CODES_QID)}


def test_a_stranger_key_opens_nothing_and_a_bad_key_is_refused(site: Site, tmp_path: Path) -> None:
    from nacl.public import PrivateKey

    stranger = tmp_path / "other.key"
    stranger.write_text(base64.b64encode(bytes(PrivateKey.generate())).decode())
    out = cli_text(
        "reveal",
        "--config",
        str(site.settings_file()),
        "--private-key-file",
        str(stranger),
        "--case",
        "F0-X",
        "--subject",
        site.pseudonym("cccd", VISITOR_CCCD),
        "--format",
        "json",
    )
    assert [f["id_number"] for f in json.loads(out)] == [None]
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    done = run_cli(
        "reveal",
        "--config",
        str(site.settings_file()),
        "--private-key-file",
        str(bad),
        "--case",
        "F0-X",
        "--subject",
        "ab" * 32,
    )
    assert done.returncode == 2 and "X25519" in done.stderr


def test_the_chain_verifies_refuses_changes_and_names_a_tampered_row(fresh_site: Site) -> None:
    store = fresh_site.store()
    for n in range(5):
        audit.append(
            store,
            actor="hr1",
            role="hr",
            action="trace",
            purpose=f"case {n}",
            query={"employee": employee(TRACED)},
            row_count=n,
            wall=time.time(),
        )
    assert audit.verify(store).ok and audit.verify(store).rows == 5
    config = str(fresh_site.settings_file())
    assert "5 rows, chain intact" in cli_text("audit", "verify", "--config", config)
    a = audit_log.c
    for change in (
        sa.update(audit_log).where(a.id == 3).values(row_count=99),
        sa.delete(audit_log).where(a.id == 3),
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(change)
    # Someone with the database owner's rights drops the guard and edits a row: the chain shows where.
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
        conn.execute(sa.update(audit_log).where(a.id == 3).values(purpose="nothing to see"))
    result = audit.verify(store)
    assert (result.ok, result.broken_at) == (False, 3)
    done = run_cli("audit", "verify", "--config", config)
    assert done.returncode == 1 and "BROKEN at row 3" in done.stdout


def test_concurrent_appends_keep_one_chain(fresh_site: Site) -> None:
    import threading

    store = fresh_site.store()

    def writer(who: str) -> None:
        for n in range(10):
            audit.append(
                store,
                actor=who,
                role="hr",
                action="export",
                purpose="p",
                query={"n": n},
                row_count=n,
                wall=time.time(),
            )

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    result = audit.verify(store)
    assert (result.ok, result.rows) == (True, 30)
