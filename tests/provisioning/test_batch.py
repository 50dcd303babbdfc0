"""`qr-provision batch`: a folder per good row, the broker's ACL and password file, a sheet of labels."""

from __future__ import annotations

import base64
import csv
import hashlib
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from nacl.public import PrivateKey

from collector.settings import IngestSettings
from device.label_code import parse_label_code
from device.settings import Settings, load_settings
from provisioning.label import LabelInfo, sheets
from tests.support.provision import provision, provision_registry, snapshot
from tests.support.tls import make_pki

__all__ = ["provision_registry"]  # the autouse fixture, imported so pytest applies it here

FLEET = """kind,plate,location_id,name
bus,98C-123.45,,
bus,98C-12,,
door,,gate-1,Cổng 1
bus,98C 123.45,,
,51G1-234.56,,Tuyến 5
door,,gate/2,
"""


def write_fleet(tmp_path: Path, text: str = FLEET) -> Path:
    path = tmp_path / "fleet.csv"
    path.write_text(text, encoding="utf-8")
    return path


def bundle_config(out: Path, location_id: str) -> Path:
    return out / location_id / "etc" / "qr-checkin" / "device.toml"


def test_good_rows_get_bundles_and_bad_rows_are_named_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, stdout, err = provision(
        capsys, "batch", write_fleet(tmp_path), "--out", out, "--broker", "mqtt://b", "--insecure"
    )
    assert code == 1
    assert "row 3: plate '98C-12'" in err
    assert "row 5: location 98C12345 is already in row 2" in err
    assert "row 7: location id 'gate/2' is not topic-safe" in err
    assert "3 row(s) refused" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "51G123456", "98C12345", "broker", "collector", "consumer", "devices.csv", "gate-1", "labels.pdf",
        "site.key",
    ]  # fmt: skip

    settings = {loc: load_settings(bundle_config(out, loc)) for loc in ("98C12345", "gate-1", "51G123456")}
    assert len({s.device.id for s in settings.values()}) == 3
    assert settings["gate-1"].location.name == "Cổng 1"
    assert settings["51G123456"].location.kind == "bus"
    site_key = (out / "site.key").read_bytes()
    for loc, s in settings.items():
        etc = out / loc / "etc" / "qr-checkin"
        assert bundle_config(out, loc).stat().st_mode & 0o777 == 0o600
        assert (etc / "site.key").read_bytes() == site_key
        assert s.broker.username == s.device.id and s.broker.password is not None
        assert s.device.id in stdout

    with (out / "devices.csv").open(encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    assert [(m["row"], m["location_id"]) for m in manifest] == [
        ("2", "98C12345"),
        ("4", "gate-1"),
        ("6", "51G123456"),
    ]
    for m in manifest:
        assert m["config_hash"] == settings[m["location_id"]].config_hash()
    pdf = (out / "labels.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1


def test_acl_confines_devices_and_the_password_file_is_mosquittos_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    provision(
        capsys,
        "batch",
        write_fleet(tmp_path),
        "--out",
        out,
        "--broker",
        "mqtt://b",
        "--insecure",
        "--consumer",
        "tracer",
    )
    acl = (out / "broker" / "acl").read_text()
    # Issue 12 item 13 replaced `pattern write checkin/v1/+/%u/#` (any location, any depth): each
    # device gets exactly its own two topics at its own location, and reads its own commands.
    assert "pattern" not in acl
    for s in _all_settings(out):
        base = f"checkin/v1/{s.location.id}/{s.device.id}"
        assert (
            f"user {s.device.id}\ntopic write {base}/events\ntopic write {base}/status\n"
            f"topic read {base}/cmd/replay\ntopic read {base}/cmd/committed\n"
        ) in acl
    assert "user tracer\ntopic read checkin/v1/#" in acl
    assert (
        "user collector\ntopic read checkin/v1/+/+/events\ntopic read checkin/v1/+/+/status\n"
        "topic write checkin/v1/+/+/cmd/replay\ntopic write checkin/v1/+/+/cmd/committed\n"
    ) in acl

    passwd = (out / "broker" / "passwd").read_text().splitlines()
    assert (out / "broker" / "passwd").stat().st_mode & 0o777 == 0o600
    logins = {s.broker.username: _password(s) for s in _all_settings(out)}
    logins["tracer"] = (out / "consumer" / "password").read_text().strip()
    logins["collector"] = tomllib.loads((out / "collector" / "collector.toml").read_text())["broker"][
        "password"
    ]
    assert {line.split(":", 1)[0] for line in passwd} == set(logins)
    for line in passwd:
        user, entry = line.split(":", 1)
        empty, kind, iterations, salt, digest = entry.split("$")
        assert (empty, kind, iterations) == ("", "7", "101")
        raw_salt = base64.b64decode(salt)
        assert len(raw_salt) == 12
        expected = hashlib.pbkdf2_hmac("sha512", logins[user].encode(), raw_salt, 101)
        assert base64.b64decode(digest) == expected


def _all_settings(out: Path) -> list[Settings]:
    return [load_settings(p) for p in sorted(out.glob("*/etc/qr-checkin/device.toml"))]


def _password(settings: Settings) -> str:
    assert settings.broker.password is not None
    return settings.broker.password.get_secret_value()


def test_an_unknown_column_refuses_the_whole_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = write_fleet(tmp_path, "kind,plate,locaton_id\nbus,98C-123.45,\n")
    before = snapshot(tmp_path)
    code, _, err = provision(
        capsys, "batch", fleet, "--out", tmp_path / "out", "--broker", "mqtt://b", "--insecure"
    )
    assert code == 2 and "unknown column(s) 'locaton_id'" in err
    assert snapshot(tmp_path) == before


def test_a_file_with_only_bad_rows_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = write_fleet(tmp_path, "plate\n98C-1\nXX-123.45\n")
    before = snapshot(tmp_path)
    code, _, err = provision(
        capsys, "batch", fleet, "--out", tmp_path / "out", "--broker", "mqtt://b", "--insecure"
    )
    assert code == 1 and "row 2:" in err and "row 3:" in err
    assert snapshot(tmp_path) == before


def test_a_used_output_folder_needs_force_and_keeps_ids_and_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, out = write_fleet(tmp_path, "plate\n98C-123.45\n"), tmp_path / "out"
    assert provision(capsys, "batch", fleet, "--out", out, "--broker", "mqtt://b", "--insecure")[0] == 0
    first = load_settings(bundle_config(out, "98C12345"))
    before = snapshot(out)
    code, _, err = provision(capsys, "batch", fleet, "--out", out, "--broker", "mqtt://b", "--insecure")
    assert code == 2 and "--force" in err
    assert snapshot(out) == before
    assert (
        provision(capsys, "batch", fleet, "--out", out, "--broker", "mqtt://b", "--insecure", "--force")[0]
        == 0
    )
    again = load_settings(bundle_config(out, "98C12345"))
    assert again.device.id == first.device.id and again.broker.password == first.broker.password


def test_with_a_ca_key_every_device_gets_a_client_certificate_named_by_its_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path / "pki")
    out = tmp_path / "out"
    code, _, err = provision(
        capsys, "batch", write_fleet(tmp_path, "plate,name\n98C-123.45,\n51G1-234.56,\n"), "--out", out,
        "--broker", "mqtts://localhost:8883", "--ca", pki.ca_cert, "--ca-key", pki.ca_key, "--no-labels",
    )  # fmt: skip
    assert code == 0, err
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    for settings in _all_settings(out):
        etc = out / settings.location.id / "etc" / "qr-checkin"
        cert = x509.load_pem_x509_certificate((etc / "client.crt").read_bytes())
        cert.verify_directly_issued_by(ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == settings.device.id
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert (etc / "client.key").stat().st_mode & 0o777 == 0o600
        assert settings.broker.tls and settings.broker.username is None and settings.broker.password is None
    assert not (out / "broker" / "passwd").exists() and not (out / "labels.pdf").exists()
    consumer = x509.load_pem_x509_certificate((out / "consumer" / "client.crt").read_bytes())
    assert consumer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "consumer"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--broker", "mqtt://b", "--ca-key", "x"), "--ca-key needs --ca"),
        (("--broker", "mqtt://b", "--consumer", "qrc-1"), "must not look like a device id"),
        (
            ("--broker", "mqtt://b", "--collector", "qrc-1"),
            "collector 'qrc-1' must not look like a device id",
        ),
        (("--broker", "mqtt://b", "--consumer", "hq", "--collector", "hq"), "must be two logins"),
        (("--broker", "mqtt://b"), "would cross the network in clear"),
        (("--broker", "ftp://b"), "has scheme 'ftp'"),
    ],
)
def test_bad_fleet_options_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    fleet = write_fleet(tmp_path, "plate\n98C-123.45\n")
    before = snapshot(tmp_path)
    code, _, err = provision(capsys, "batch", fleet, "--out", tmp_path / "out", *extra)
    assert code == 2 and message in err
    assert snapshot(tmp_path) == before


def test_a_sheet_holds_ten_labels_a_page_all_readable() -> None:
    infos = [
        LabelInfo(
            f"qrc-{i:08x}", f"gate-{i}", f"Cổng {i}", "door", "mqtts://broker.example.com:8883", f"{i:012x}"
        )
        for i in range(11)
    ]
    pages = sheets(infos)
    assert len(pages) == 2
    found = [parse_label_code(r.text) for page in pages for r in zxingcpp.read_barcodes(np.array(page))]
    assert sorted((c.device_id, c.location_id) for c in found if c) == sorted(
        (i.device_id, i.location_id) for i in infos
    )


def test_the_collector_gets_its_login_the_site_key_and_a_collector_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    fleet = write_fleet(tmp_path, "plate\n98C-123.45\n")
    login = ("--broker", "mqtt://b", "--insecure", "--no-labels")
    assert provision(capsys, "batch", fleet, "--out", out, *login)[0] == 0
    collector = out / "collector"
    config = tomllib.loads((collector / "collector.toml").read_text())
    password = config["broker"].pop("password")
    assert config == {
        "database": {"url": "sqlite:////var/lib/qr-collector/collector.db"},
        "broker": {
            "host": "b",
            "port": 1883,
            "tls": False,
            "topic_prefix": "checkin",
            "client_id": "collector",
            "username": "collector",
        },
        "privacy": {"site_key_file": "/etc/qr-collector/site.key"},
    }
    (entry,) = [
        line for line in (out / "broker/passwd").read_text().splitlines() if line.startswith("collector:")
    ]
    _, _, _, salt, digest = entry.split(":", 1)[1].split("$")
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt), 101
    )
    assert (collector / "site.key").read_bytes() == (out / "site.key").read_bytes()
    for secret in ("collector.toml", "site.key"):
        assert (collector / secret).stat().st_mode & 0o777 == 0o600
    # A --force run keeps the collector's password, as it keeps the devices': its host stays logged in.
    assert provision(capsys, "batch", fleet, "--out", out, *login, "--force")[0] == 0
    assert tomllib.loads((collector / "collector.toml").read_text())["broker"]["password"] == password


def test_the_collector_toml_loads_in_the_collector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Runs once collector/ is in the tree (issue 17): the two halves are built in parallel.
    collector_settings = pytest.importorskip("collector.settings")
    out = tmp_path / "out"
    fleet = write_fleet(tmp_path, "plate\n98C-123.45\n")
    login = ("--broker", "mqtts://b", "--no-labels", "--collector-keypair")
    assert provision(capsys, "batch", fleet, "--out", out, *login)[0] == 0
    settings = collector_settings.load_settings(out / "collector" / "collector.toml")
    assert (settings.broker.host, settings.broker.port, settings.broker.tls) == ("b", 8883, True)
    assert settings.broker.username == "collector" and settings.broker.password is not None
    assert settings.privacy.private_key_file == Path("/etc/qr-collector/collector.key")
    # The generated private key is one the collector reads, and it opens what a device seals to it.
    private_key = pytest.importorskip("collector.subjects").load_private_key(
        out / "collector" / "collector.key"
    )
    public = load_settings(bundle_config(out, "98C12345")).privacy.collector_public_key
    assert base64.b64encode(bytes(private_key.public_key)).decode() == public


def test_with_a_ca_key_the_collector_gets_a_client_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path / "pki")
    out = tmp_path / "out"
    code, _, err = provision(
        capsys, "batch", write_fleet(tmp_path, "plate\n98C-123.45\n"), "--out", out, "--collector", "hq",
        "--broker", "mqtts://broker.example.com", "--ca", pki.ca_cert, "--ca-key", pki.ca_key, "--no-labels",
    )  # fmt: skip
    assert code == 0, err
    broker = tomllib.loads((out / "collector" / "collector.toml").read_text())["broker"]
    assert broker == {
        "host": "broker.example.com",
        "port": 8883,
        "tls": True,
        "topic_prefix": "checkin",
        "client_id": "hq",
        "cert": "/etc/qr-collector/client.crt",
        "key": "/etc/qr-collector/client.key",
        "ca": "/etc/qr-collector/ca.crt",
    }
    cert = x509.load_pem_x509_certificate((out / "collector" / "client.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "hq"
    assert (out / "collector" / "ca.crt").read_bytes() == pki.ca_cert.read_bytes()
    assert "user hq\n" in (out / "broker" / "acl").read_text()
    conf = (out / "broker" / "mosquitto.conf").read_text().splitlines()
    assert {"use_username_as_clientid true", "use_identity_as_username true", "listener 8883"} <= set(conf)
    # A collector on MQTT 3.1.1 acknowledges after each commit: the broker's window covers batches.
    (inflight,) = [line for line in conf if line.startswith("max_inflight_messages")]
    assert int(inflight.split()[1]) >= 2 * IngestSettings().batch_max
    assert not any(line.startswith("password_file") for line in conf)


def test_address_columns_reach_the_config_and_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    fleet = write_fleet(
        tmp_path,
        "plate,name,address,ward,district,province\n"
        "98C-123.456,Xe đưa đón công nhân,Thôn A,Xã Hương Gián,Huyện Yên Dũng,Bắc Giang\n"
        "98C-123.45,,,,,\n",
    )
    code, _, err = provision(
        capsys, "batch", fleet, "--out", out, "--broker", "mqtt://b", "--insecure", "--no-labels"
    )
    assert code == 0, err
    located = load_settings(bundle_config(out, "98C123456")).location
    assert (located.name, located.address, located.ward, located.district, located.province) == (
        "Xe đưa đón công nhân",
        "Thôn A",
        "Xã Hương Gián",
        "Huyện Yên Dũng",
        "Bắc Giang",
    )
    assert load_settings(bundle_config(out, "98C12345")).location.address == ""
    with (out / "devices.csv").open(encoding="utf-8") as fh:
        manifest = {m["location_id"]: m for m in csv.DictReader(fh)}
    assert manifest["98C123456"]["province"] == "Bắc Giang" and manifest["98C12345"]["ward"] == ""


def test_a_collector_keypair_puts_every_device_in_mode_collector_and_its_secrets_only_in_collector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    fleet = write_fleet(tmp_path, "plate\n98C-123.45\n51G1-234.56\n")
    login = ("--broker", "mqtt://b", "--insecure", "--no-labels")
    code, stdout, err = provision(capsys, "batch", fleet, "--out", out, *login, "--collector-keypair")
    assert code == 0, err
    collector = out / "collector"
    private_b64 = (collector / "collector.key").read_text().strip()
    assert (collector / "collector.key").stat().st_mode & 0o777 == 0o600
    public = base64.b64encode(bytes(PrivateKey(base64.b64decode(private_b64)).public_key)).decode()
    assert (collector / "collector.pub").read_text().strip() == public
    site_key = (out / "site.key").read_bytes()
    assert (collector / "site.key").read_bytes() == site_key
    assert tomllib.loads((collector / "collector.toml").read_text())["privacy"] == {
        "site_key_file": "/etc/qr-collector/site.key",
        "private_key_file": "/etc/qr-collector/collector.key",
    }
    for settings in _all_settings(out):
        assert (settings.privacy.subject, settings.privacy.collector_public_key) == ("collector", public)
        bundle = out / settings.location.id
        # Nothing on a device's card reverses a subject: neither the site key nor the collector's key.
        for path in (p for p in bundle.rglob("*") if p.is_file()):
            content = path.read_bytes()
            assert site_key.strip() not in content and private_b64.encode() not in content, path
        assert not (bundle / "etc/qr-checkin/site.key").exists()
    assert "privacy mode collector" in stdout


def test_a_given_collector_key_is_used_and_two_sources_of_it_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    out = tmp_path / "out"
    fleet = write_fleet(tmp_path, "plate\n98C-123.45\n")
    login = ("--broker", "mqtt://b", "--insecure", "--no-labels")
    code, _, err = provision(
        capsys, "batch", fleet, "--out", out, *login, "--collector-public-key", key, "--collector-keypair"
    )
    assert code == 2 and "not both" in err and not out.exists()
    code, stdout, err = provision(capsys, "batch", fleet, "--out", out, *login, "--collector-public-key", key)
    assert code == 0, err
    assert load_settings(bundle_config(out, "98C12345")).privacy.collector_public_key == key
    assert not (out / "collector" / "collector.key").exists()
    assert "install the collector's private key as /etc/qr-collector/collector.key" in stdout
