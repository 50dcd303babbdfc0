"""The subject of an event in each privacy mode, the site key, and the sealed box opened by the authority."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from device.errors import ConfigError
from device.payloads import Recognition, recognise
from device.privacy import Mode, Privacy, load_key
from tests.support.payloads import personal_vectors, vectors
from tests.support.personal_data import personal_strings
from tests.support.schema import validate_event

KEY = b"0123456789abcdef0123456789abcdef"
SAMPLES = vectors()["bhyt"] + vectors()["cccd"]
PERSONAL = personal_vectors()["personal"] + personal_vectors()["same_person"]


def roster_hmac(key: bytes, code_type: str, number: str) -> str:
    """What an employer holding the site key computes for each roster entry (README "Privacy")."""
    return hmac.new(key, f"{code_type}:{number}".encode(), hashlib.sha256).hexdigest()


def authority() -> tuple[PrivateKey, str]:
    private = PrivateKey.generate()
    return private, base64.b64encode(bytes(private.public_key)).decode()


def as_event(subject: dict[str, Any], rec: Recognition) -> dict[str, Any]:
    """A minimal event around the subject, to validate it against the shipped schema."""
    return {
        "schema": "checkin.event/1",
        "event_id": "01890a5d-ac96-774b-bcce-b302099a8057",
        "device_id": "bus-1",
        "location_id": "98C12345",
        "location_kind": "bus",
        "seq": 1,
        "scanned_at": "2024-01-01T00:00:00.000Z",
        "clock": "synced",
        "source": "stdin",
        "code": {"type": rec.type, "variant": rec.variant},
        "subject": subject,
    }


def assert_nothing_personal(subject: dict[str, Any], fields: dict[str, Any], *, allowed: set[str]) -> None:
    text = json.dumps(subject, ensure_ascii=False)
    leaked = [s for s in personal_strings(fields) - allowed if s in text]
    assert not leaked


# -- modes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s["payload"][:12])
def test_hmac_mode_gives_a_pseudonym_and_a_masked_form_only(sample: dict[str, Any]) -> None:
    rec = recognise(sample["payload"])
    subject = Privacy("hmac", KEY).subject(rec)
    assert set(subject) == {"mode", "hmac", "key_id", "masked"}
    assert subject["hmac"] == roster_hmac(KEY, rec.type or "", rec.subject_id or "")
    assert subject["key_id"] == hashlib.sha256(KEY).hexdigest()[:8]
    assert subject["masked"] == rec.masked
    assert_nothing_personal(subject, sample["fields"], allowed=set())
    validate_event(as_event(subject, rec))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s["payload"][:12])
def test_id_mode_adds_the_number_and_nothing_else(sample: dict[str, Any]) -> None:
    rec = recognise(sample["payload"])
    subject = Privacy("id", KEY).subject(rec)
    assert set(subject) == {"mode", "hmac", "key_id", "masked", "id"}
    assert subject["id"] == rec.subject_id
    assert_nothing_personal(subject, sample["fields"], allowed={rec.subject_id or ""})
    validate_event(as_event(subject, rec))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s["payload"][:12])
def test_sealed_subject_opens_with_the_authoritys_private_key(sample: dict[str, Any]) -> None:
    private, public = authority()
    rec = recognise(sample["payload"])
    privacy = Privacy("sealed", KEY, public)
    subject = privacy.subject(rec)
    assert set(subject) == {"mode", "hmac", "key_id", "masked", "sealed"}
    assert_nothing_personal(subject, sample["fields"], allowed=set())
    validate_event(as_event(subject, rec))

    record = json.loads(SealedBox(private).decrypt(base64.b64decode(subject["sealed"])))
    fields = sample["fields"]
    number = fields["card_no"][-10:] if "card_no" in fields else fields["id"]
    assert record == {
        "type": rec.type,
        "id": number,
        "name": fields["name"],
        "birth_year": int(fields["dob"][:4]),
    }
    # A new ephemeral key per box: two scans of one person are not linkable from the ciphertext.
    assert privacy.subject(rec)["sealed"] != subject["sealed"]
    with pytest.raises(CryptoError):
        SealedBox(PrivateKey.generate()).decrypt(base64.b64decode(subject["sealed"]))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s["payload"][:12])
def test_collector_subject_is_sealed_to_the_collector_and_holds_no_pseudonym(sample: dict[str, Any]) -> None:
    """Issue 12 item 5: the device holds no secret that reverses a subject; the collector computes hmac."""
    collector, public = authority()
    rec = recognise(sample["payload"])
    privacy = Privacy("collector", None, collector_public_key=public, window_key=os.urandom(32))
    subject = privacy.subject(rec)
    assert set(subject) == {"mode", "masked", "to_collector", "collector_key_id"}
    assert subject["collector_key_id"] == hashlib.sha256(bytes(collector.public_key)).hexdigest()[:8]
    opened = json.loads(SealedBox(collector).decrypt(base64.b64decode(subject["to_collector"])))
    assert opened == {"type": rec.type, "id": rec.subject_id}
    # What the collector stores, by the site key only it holds (protocol.md).
    assert roster_hmac(KEY, opened["type"], opened["id"]) == Privacy("hmac", KEY).subject(rec)["hmac"]
    number = rec.subject_id or ""
    assert subject["masked"].count("*") >= 9 and subject["masked"].endswith(number[9:])
    assert number[: len(number) - 3] not in subject["masked"]
    assert_nothing_personal(subject, sample["fields"], allowed=set())
    validate_event(as_event(subject, rec))
    with pytest.raises(ValueError, match="no site key"):
        privacy.pseudonym(rec.type or "", number)
    # The window key is the device's own: not the pseudonym, and gone with the next boot's key.
    assert privacy.window_key(rec.type or "", number) != roster_hmac(KEY, rec.type or "", number)
    other_boot = Privacy("collector", None, collector_public_key=public, window_key=os.urandom(32))
    assert other_boot.window_key(rec.type or "", number) != privacy.window_key(rec.type or "", number)


def test_collector_mode_seals_for_the_authority_too_when_configured() -> None:
    authority_private, authority_public = authority()
    _, collector_public = authority()
    rec = recognise(vectors()["cccd"][0]["payload"])
    privacy = Privacy(
        "collector", None, authority_public, collector_public_key=collector_public, window_key=os.urandom(32)
    )
    subject = privacy.subject(rec)
    assert set(subject) == {"mode", "masked", "to_collector", "collector_key_id", "sealed"}
    record = json.loads(SealedBox(authority_private).decrypt(base64.b64decode(subject["sealed"])))
    assert record["id"] == rec.subject_id
    validate_event(as_event(subject, rec))


def test_schema_requires_by_mode() -> None:
    rec = recognise(vectors()["cccd"][0]["payload"])
    _, public = authority()
    collector = Privacy("collector", None, collector_public_key=public, window_key=os.urandom(32)).subject(
        rec
    )
    hmac_subject = Privacy("hmac", KEY).subject(rec)
    for broken in (
        {**collector, "hmac": hmac_subject["hmac"], "key_id": hmac_subject["key_id"]},
        {k: v for k, v in collector.items() if k != "to_collector"},
        {**hmac_subject, "to_collector": collector["to_collector"]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate_event(as_event(broken, rec))


def test_other_codes_are_never_in_clear() -> None:
    private, public = authority()
    text = "NGUYEN VAN A|0912345678|01/01/1990"
    rec = recognise(text)
    assert rec.type == "other"
    modes: tuple[Mode, ...] = ("hmac", "id")
    for mode in modes:
        subject = Privacy(mode, KEY).subject(rec)
        assert set(subject) == {"mode", "hmac", "key_id", "masked"}
        assert "NGUYEN" not in json.dumps(subject) and "0912345678" not in json.dumps(subject)
        assert subject["hmac"] == roster_hmac(KEY, "other", text)
    sealed = Privacy("sealed", KEY, public).subject(rec)
    assert json.loads(SealedBox(private).decrypt(base64.b64decode(sealed["sealed"]))) == {
        "type": "other",
        "id": text,
    }


@pytest.mark.parametrize("sample", PERSONAL, ids=lambda s: s["payload"][:12])
def test_personal_qr_subject_in_each_mode(sample: dict[str, Any]) -> None:
    """The QID is the id; the name, birth date, document number and EXT go nowhere in clear, and the
    sealed record carries the QID, the document number as shown and the birth year (issue 14)."""
    private, public = authority()
    rec = recognise(sample["payload"])
    qid = sample["fields"]["qid"]
    hmac_subject = Privacy("hmac", KEY).subject(rec)
    assert hmac_subject["hmac"] == roster_hmac(KEY, "personal", qid)
    assert hmac_subject["masked"] == "******" + qid[-2:]
    assert_nothing_personal(hmac_subject, sample["fields"], allowed=set())
    id_subject = Privacy("id", KEY).subject(rec)
    assert id_subject["id"] == qid
    assert_nothing_personal(id_subject, sample["fields"], allowed={qid})
    sealed = Privacy("sealed", KEY, public).subject(rec)
    assert_nothing_personal(sealed, sample["fields"], allowed=set())
    assert json.loads(SealedBox(private).decrypt(base64.b64decode(sealed["sealed"]))) == {
        "type": "personal",
        "id": qid,
        "document": sample["fields"]["document"],
        "birth_year": int(sample["fields"]["dob"][:4]),
    }
    for subject in (hmac_subject, id_subject, sealed):
        validate_event(as_event(subject, rec))


def test_masking_in_the_app_keeps_the_pseudonym() -> None:
    masked, full = personal_vectors()["personal"][0], personal_vectors()["same_person"][0]
    privacy = Privacy("hmac", KEY)
    assert privacy.subject(recognise(masked["payload"])) == privacy.subject(recognise(full["payload"]))


def test_old_and_new_bhyt_card_share_the_pseudonym() -> None:
    old = vectors()["bhyt"][1]["payload"]  # DN4019999000002, v1
    fields = old.split("|")
    new = "|".join(["9999000002", *fields[1:7], "-", *fields[8:14], "4", "-", "$"])
    a, b = recognise(old), recognise(new)
    assert (a.variant, b.variant) == ("bhyt-v1", "bhyt-v2"), b.reason
    privacy = Privacy("hmac", KEY)
    assert privacy.subject(a)["hmac"] == privacy.subject(b)["hmac"]


def test_pseudonyms_differ_between_deployments_and_code_types() -> None:
    one, two = Privacy("hmac", KEY), Privacy("hmac", KEY[::-1])
    assert one.pseudonym("cccd", "001090999901") != two.pseudonym("cccd", "001090999901")
    assert one.pseudonym("cccd", "9999000001") != one.pseudonym("bhyt", "9999000001")
    assert one.key_id != two.key_id


def test_subject_of_a_rejected_code_is_an_error() -> None:
    with pytest.raises(ValueError, match="accepted"):
        Privacy("hmac", KEY).subject(recognise(""))


def test_repr_hides_the_key() -> None:
    shown = repr(Privacy("hmac", KEY))
    assert KEY.decode() not in shown and "key_id" in shown


@pytest.mark.parametrize(
    ("mode", "public", "message"),
    [
        ("sealed", None, "needs privacy.authority_public_key"),
        ("sealed", "not base64!", "not a base64 X25519 key"),
        ("sealed", base64.b64encode(b"short").decode(), "not a base64 X25519 key"),
        ("plain", None, "must be one of hmac, id, sealed"),
        ("collector", None, "needs privacy.collector_public_key"),
        ("collector", "not base64!", "collector_public_key is not a base64 X25519 key"),
    ],
)
def test_bad_privacy_configuration(mode: str, public: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        if mode == "collector":
            Privacy("collector", None, collector_public_key=public, window_key=os.urandom(32))
        else:
            Privacy(mode, KEY, public)  # type: ignore[arg-type]


def test_subject_schema_rejects_a_subject_without_pseudonym() -> None:
    """The schema is what consumers rely on: it must notice a subject that lost its hmac."""
    rec = recognise(vectors()["cccd"][0]["payload"])
    subject = Privacy("hmac", KEY).subject(rec)
    del subject["hmac"]
    with pytest.raises(jsonschema.ValidationError):
        validate_event(as_event(subject, rec))


# -- the site key ---------------------------------------------------------------------------------


def test_missing_key_outside_dev_mode_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing: provisioning installs it"):
        load_key(tmp_path / "site.key", create=False)


def test_dev_mode_generates_a_private_key_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state" / "site.key"
    with caplog.at_level(logging.WARNING, logger="device.privacy"):
        key = load_key(path, create=True)
    assert "generating a development key" in caplog.text
    assert len(key) == 64 and bytes.fromhex(key.decode())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path, create=True) == key
    assert load_key(path, create=False) == key


def test_key_file_bytes_are_the_key(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    path.write_bytes(b"  " + KEY + b"\n\n")
    path.chmod(0o600)
    assert load_key(path, create=False) == KEY


def test_short_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    path.write_bytes(b"abc\n")
    with pytest.raises(ConfigError, match="holds 3 bytes: at least 16"):
        load_key(path, create=False)


def test_unreadable_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_key(tmp_path, create=True)


@pytest.mark.parametrize(("mode", "warns"), [(0o600, False), (0o640, False), (0o644, True), (0o602, True)])
def test_key_open_to_all_users_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, warns: bool
) -> None:
    path = tmp_path / "site.key"
    path.write_bytes(KEY)
    os.chmod(path, mode)
    with caplog.at_level(logging.WARNING, logger="device.privacy"):
        assert load_key(path, create=False) == KEY
    assert ("open to all users" in caplog.text) == warns


def _start(path: Path, ready: Any) -> bytes:
    ready.wait(10)
    return load_key(path, create=True)


def test_concurrent_starters_agree_on_one_key(tmp_path: Path) -> None:
    """Several processes generating the missing key at once: one wins, all use its key, no leftovers."""
    path = tmp_path / "site.key"
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(4) as pool:
        ready = manager.Event()
        results = [pool.apply_async(_start, (path, ready)) for _ in range(8)]
        ready.set()
        keys = {r.get(timeout=30) for r in results}
    assert keys == {path.read_bytes().strip()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.key"]
