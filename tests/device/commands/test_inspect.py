"""`qr-checkin inspect` as a technician runs it: the installed entry point in a subprocess."""

from __future__ import annotations

import json
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

from tests.support.daemon import DaemonProcess, write_config
from tests.support.mosquitto import free_port
from tests.support.paths import ROOT
from tests.support.payloads import personal_vectors, vectors
from tests.support.personal_data import REDACTED, all_personal_strings

QR_CHECKIN = ROOT / ".venv" / "bin" / "qr-checkin"
V = vectors()
VALID = [s["payload"] for s in V["bhyt"] + V["cccd"]]
INVALID = [b["payload"] for b in V["invalid"]]


def inspect(*args: str | bytes, stdin: bytes = b"") -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run([str(QR_CHECKIN), "inspect", *args], input=stdin, capture_output=True, timeout=60)
    out = proc.stdout.decode()
    return proc.returncode, [json.loads(line) for line in out.splitlines()], proc.stderr.decode()


def assert_no_personal_data(text: str) -> None:
    leaked = sorted(s for s in all_personal_strings() if s in text)
    assert not leaked


def test_arguments_are_judged_without_personal_data() -> None:
    held_out = [
        VALID[0].replace("01 - 001", "01 – 001"),  # en dash facility code
        unicodedata.normalize("NFD", VALID[3]),  # decomposed Vietnamese
        VALID[4] + "||",  # 2024 card: trailing empty fields
        VALID[1] + "\r\n",  # scanner suffix
        VALID[2].replace("|05/06/2019|1|", "|2019|1|", 1),  # year-only birth date
        "VISITOR-42",
    ]
    code, verdicts, err = inspect(*VALID, *INVALID, *held_out)
    assert code == 0, err
    assert len(verdicts) == len(VALID) + len(INVALID) + len(held_out)
    valid, invalid, extra = (
        verdicts[: len(VALID)],
        verdicts[len(VALID) : -len(held_out)],
        verdicts[-len(held_out) :],
    )
    assert [v["type"] for v in valid] == ["bhyt"] * 3 + ["cccd"] * 3
    assert all(v["accepted"] and v["reason"] is None for v in valid)
    assert [v["variant"] for v in valid] == ["bhyt-v2", "bhyt-v1", "bhyt-v1", "cccd", "cccd", "cccd"]
    assert [v["masked"] for v in valid[3:]] == ["0010******01", "0793******02", "0361******03"]
    assert [v["details"]["birth_year"] for v in valid] == [1990, 1985, 2019, 1990, 2003, 1984]
    assert valid[1]["details"]["valid_to_year"] == 2020 and valid[1]["details"]["expired"] is True
    assert valid[0]["details"]["valid_to_year"] is None and valid[0]["details"]["expired"] is False
    assert not any(v["accepted"] for v in invalid)
    assert [v["reason"] for v in invalid] == [
        REDACTED.get(b["verifier_says"], b["verifier_says"]) for b in V["invalid"]
    ]
    assert [(v["type"], v["accepted"]) for v in extra] == [("bhyt", True)] * 1 + [("cccd", True)] * 2 + [
        ("bhyt", True),
        ("bhyt", True),
        ("other", True),
    ]
    assert extra[-1]["masked"] == "VI******" and extra[-1]["details"] == {"length": 10}
    assert all("personal" not in v for v in verdicts)
    assert_no_personal_data(json.dumps(verdicts, ensure_ascii=False) + err)


def test_stdin_json_lines_keep_going_past_bad_lines() -> None:
    lines = [
        json.dumps(VALID[3]),
        "{not json",
        json.dumps(VALID[0] + "\r\n\x00\x00"),
        "",
        json.dumps(["a list"]),
        json.dumps("bad\x01control"),
        json.dumps(INVALID[-1], ensure_ascii=False),
    ]
    stdin = ("\n".join(lines) + "\n").encode().replace(b"{not json", b'{not json\n"\xff\xfe"')
    code, verdicts, err = inspect(stdin=stdin)
    assert code == 1
    assert [(v["line"], v["type"], v["accepted"]) for v in verdicts] == [
        (1, "cccd", True),
        (4, "bhyt", True),
        (7, None, False),
        (8, "cccd", False),
    ]
    assert verdicts[2]["reason"] == "control character U+0001 in scan"
    assert "line 2: not valid JSON" in err and "line 3: not valid UTF-8 (byte 0xff at 1)" in err
    assert "line 6: expected a JSON string, got list" in err
    assert "line 5" not in err
    assert_no_personal_data(json.dumps(verdicts, ensure_ascii=False) + err)


def test_personal_data_only_with_the_flag() -> None:
    code, verdicts, err = inspect("--show-personal-data", VALID[3], "VISITOR-42")
    assert code == 0
    assert "printing personal data" in err
    person = V["cccd"][0]["fields"]
    assert verdicts[0]["personal"] == {k: v for k, v in person.items() if k != "variant"}
    assert verdicts[1]["personal"] == {"text": "VISITOR-42"}


def test_reject_other_and_usage_errors() -> None:
    code, verdicts, _ = inspect("--reject-other", "VISITOR-42", VALID[0])
    assert code == 0
    assert [(v["type"], v["accepted"]) for v in verdicts] == [("other", False), ("bhyt", True)]
    code, _, err = inspect("--no-such-flag")
    assert code == 2 and "unrecognized arguments" in err


def test_a_reader_that_leaves_early_is_no_crash() -> None:
    many = "\n".join(json.dumps(p) for p in VALID * 2000) + "\n"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{QR_CHECKIN} inspect | head -n 1"],
        input=many.encode(),
        capture_output=True,
        timeout=60,
    )
    # pipefail: the status is inspect's own, had it failed.
    assert proc.returncode == 0, proc.stderr[-500:]
    assert len(proc.stdout.splitlines()) == 1
    assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr, proc.stderr[-500:]


def test_argv_bytes_and_lone_surrogates_are_judged_as_the_daemon_judges_scanned_bytes(tmp_path: Path) -> None:
    """Issue 12 item 17: a lone surrogate crashed inspect; argv bytes were judged unlike the daemon's."""
    code, verdicts, err = inspect(b"VISITOR-\xff-1", "VISITOR-OK")
    assert code == 0 and "Traceback" not in err, err
    assert [(v["accepted"], v["reason"]) for v in verdicts] == [
        (False, "not valid UTF-8 (byte 0xff at 8)"),
        (True, None),
    ]
    code, verdicts, err = inspect(stdin=b'"\\ud800VISITOR"\n"VISITOR-\\udfff"\n')
    assert code == 0 and "Traceback" not in err, err
    assert [v["reason"] for v in verdicts] == [
        "not valid UTF-8 (byte 0xed at 0)",
        "not valid UTF-8 (byte 0xed at 8)",
    ]

    config = write_config(tmp_path / "device.toml", port=free_port(), storage=tmp_path / "state")
    daemon = DaemonProcess(config).start()
    try:
        assert daemon.proc is not None and daemon.proc.stdin is not None
        daemon.proc.stdin.write(b"VISITOR-\xff-1\n")
        daemon.proc.stdin.flush()
        answer = daemon.next_decision()
    finally:
        daemon.stop()
    assert (answer["feedback"], answer["reason"]) == ("rejected", "not valid UTF-8 (byte 0xff at 8)")


def test_a_personal_qr_is_reported_like_the_cards() -> None:
    people, bad = personal_vectors()["personal"], personal_vectors()["invalid"][0]
    code, verdicts, err = inspect(*(p["payload"] for p in people), bad["payload"])
    assert code == 0, err
    *accepted, rejected = verdicts
    assert {(v["type"], v["accepted"], v["variant"]) for v in accepted} == {("personal", True, "personal")}
    assert [v["masked"] for v in accepted] == ["******" + p["fields"]["qid"][-2:] for p in people]
    assert [v["details"] for v in accepted] == [
        {"birth_year": 1991, "document": "masked", "declared": "self", "ext_fields": 0},
        {"birth_year": 1975, "document": "masked", "declared": "on behalf", "ext_fields": 4},
        {"birth_year": 1985, "document": "cccd", "declared": "on behalf", "ext_fields": 4},
        {"birth_year": 2001, "document": "passport", "declared": "self", "ext_fields": 1},
    ]
    assert (rejected["type"], rejected["accepted"]) == ("personal", False)
    assert rejected["reason"] == bad["reason"]
    assert_no_personal_data(json.dumps(verdicts, ensure_ascii=False) + err)

    code, verdicts, _ = inspect("--show-personal-data", people[2]["payload"])
    assert code == 0 and verdicts[0]["personal"] == people[2]["fields"]
