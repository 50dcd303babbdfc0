"""`qr-provision device` on a directory standing in for a mounted SD card's root filesystem."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from nacl.public import PrivateKey
from PIL import Image

from device.cli import main as checkin_cli
from device.label_code import parse_label_code
from device.settings import load_settings
from provisioning.verify import Expectation, expectation, judge
from tests.support.paths import ROOT
from tests.support.provision import provision, provision_registry, snapshot
from tests.support.tls import make_pki

__all__ = ["provision_registry"]  # the autouse fixture, imported so pytest applies it here

QR_CHECKIN = ROOT / ".venv" / "bin" / "qr-checkin"
BUS = ("device", "--kind", "bus", "--plate", "98C-123.45", "--broker", "mqtt://broker.example.com")


@pytest.fixture
def sd(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    return root


def config_of(root: Path) -> Path:
    return root / "etc" / "qr-checkin" / "device.toml"


def check_config(config: Path) -> subprocess.CompletedProcess[str]:
    command = [str(QR_CHECKIN)] if QR_CHECKIN.exists() else [sys.executable, "-m", "device.cli"]
    return subprocess.run(
        [*command, "check-config", "--config", str(config)], capture_output=True, text=True, timeout=60
    )


def decoded_label(path: Path) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(np.array(Image.open(path).convert("L")))]


def test_a_bus_by_plate_gets_a_config_check_config_accepts_and_a_label(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    label = tmp_path / "label.png"
    code, out, err = provision(capsys, *BUS, "--root", sd, "--label", label)
    assert code == 0, err
    config = config_of(sd)
    assert config.stat().st_mode & 0o777 == 0o600
    assert (sd / "etc/qr-checkin/site.key").stat().st_mode & 0o777 == 0o600

    checked = check_config(config)
    assert checked.returncode == 0, checked.stderr
    effective = json.loads(checked.stdout)
    assert effective["location"] == {"id": "98C12345", "kind": "bus", "name": "98C-123.45"}
    device_id = effective["device"]["id"]
    assert re.fullmatch(r"qrc-[0-9a-f]{8}", device_id)
    assert effective["broker"]["host"] == "broker.example.com" and effective["broker"]["port"] == 1883
    assert effective["broker"]["protocol"] == "5"
    # On-device paths, whatever --root was.
    assert effective["privacy"]["key_file"] == "/etc/qr-checkin/site.key"
    assert effective["storage"]["dir"] == "/var/lib/qr-checkin"

    (text,) = decoded_label(label)
    code_read = parse_label_code(text)
    assert code_read is not None
    assert (code_read.device_id, code_read.location_id) == (device_id, "98C12345")
    assert code_read.config_hash == effective["config_hash"] == load_settings(config).config_hash()
    assert device_id in out and "98C12345" in out and effective["config_hash"] in out
    assert f"user {device_id}\n  topic write checkin/v1/98C12345/{device_id}/events\n" in out


def test_a_door_by_id_with_a_pdf_label(sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    label = tmp_path / "gate.pdf"
    args = ("device", "--kind", "door", "--location-id", "gate-1", "--name", "Cổng 1")
    code, _, err = provision(
        capsys, *args, "--broker", "mqtt://10.1.2.3:1884", "--root", sd, "--label", label
    )
    assert code == 0, err
    settings = load_settings(config_of(sd))
    assert (settings.location.id, settings.location.kind, settings.location.name) == (
        "gate-1",
        "door",
        "Cổng 1",
    )
    assert (settings.broker.host, settings.broker.port, settings.broker.tls) == ("10.1.2.3", 1884, False)
    assert label.read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("--plate", "98C-12"), "'98C-12'"),
        (("--plate", "98C/123.45"), "'98C/123.45'"),
        (("--plate", "98С-123.45"), "U+0421"),
    ],
)
def test_a_bad_plate_is_refused_and_nothing_is_written(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], shown: str
) -> None:
    before = snapshot(tmp_path)
    code, _, err = provision(
        capsys,
        "device",
        "--kind",
        "bus",
        *args,
        "--broker",
        "mqtt://b",
        "--root",
        sd,
        "--label",
        tmp_path / "l.png",
    )
    assert code == 2
    assert shown in err and "expected two digits" in err and "Nothing was written" in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("url", ["mqtt://user:pw@b", "https://b", "mqtt://b:70000", "b:1883"])
def test_a_bad_broker_url_is_refused_and_nothing_is_written(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    before = snapshot(tmp_path)
    code, _, err = provision(
        capsys, "device", "--kind", "door", "--location-id", "g1", "--broker", url, "--root", sd
    )
    assert code == 2
    assert repr(url) in err and "expected mqtt://HOST[:PORT]" in err
    assert snapshot(tmp_path) == before


def test_existing_files_are_not_overwritten_without_force_and_the_id_is_kept(
    sd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert provision(capsys, *BUS, "--root", sd)[0] == 0
    first = load_settings(config_of(sd))
    # The same provisioning again changes nothing and is not a conflict.
    assert provision(capsys, *BUS, "--root", sd)[0] == 0
    assert load_settings(config_of(sd)) == first

    before = snapshot(sd)
    moved = ("device", "--kind", "bus", "--plate", "51G1-234.56", "--broker", "mqtts://other.example.com")
    code, _, err = provision(capsys, *moved, "--root", sd)
    assert code == 2 and "--force" in err and str(config_of(sd)) in err
    assert snapshot(sd) == before

    code, _, err = provision(capsys, *moved, "--root", sd, "--force")
    assert code == 0, err
    second = load_settings(config_of(sd))
    assert second.device.id == first.device.id
    assert (second.location.id, second.broker.host, second.broker.tls) == (
        "51G123456",
        "other.example.com",
        True,
    )
    assert config_of(sd).stat().st_mode & 0o777 == 0o600


def test_an_existing_label_is_not_overwritten_without_force(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    label = tmp_path / "label.png"
    label.write_bytes(b"someone else's picture")
    before = snapshot(tmp_path)
    code, _, err = provision(capsys, *BUS, "--root", sd, "--label", label)
    assert code == 2 and str(label) in err
    assert snapshot(tmp_path) == before


def test_a_boot_partition_or_missing_mount_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = tmp_path / "bootfs"
    boot.mkdir()
    code, _, err = provision(capsys, *BUS, "--root", boot)
    assert code == 2 and "boot partition" in err
    code, _, err = provision(capsys, *BUS, "--root", tmp_path / "not-mounted")
    assert code == 2 and "is the SD card mounted" in err
    assert not (boot / "etc").exists()


def test_tls_material_is_copied_and_the_certificate_names_the_device(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path / "pki")
    cert, key = pki.client("qrc-0000beef")
    tls = ("--ca", pki.ca_cert, "--cert", cert, "--key", key)
    code, _, err = provision(
        capsys,
        "device",
        "--kind",
        "door",
        "--location-id",
        "gate-1",
        "--broker",
        "mqtts://b",
        *tls,
        "--root",
        sd,
    )
    assert code == 0, err
    settings = load_settings(config_of(sd))
    etc = sd / "etc/qr-checkin"
    assert settings.device.id == "qrc-0000beef"
    assert (settings.broker.ca, settings.broker.cert, settings.broker.key) == (
        Path("/etc/qr-checkin/ca.crt"),
        Path("/etc/qr-checkin/client.crt"),
        Path("/etc/qr-checkin/client.key"),
    )
    assert (etc / "client.key").read_bytes() == key.read_bytes()
    assert (etc / "client.key").stat().st_mode & 0o777 == 0o600
    assert (etc / "ca.crt").read_bytes() == pki.ca_cert.read_bytes()

    # A certificate for another device would have its events refused by the ACL: refused here.
    other_cert, other_key = pki.client("qrc-0000cafe")
    before = snapshot(sd)
    code, _, err = provision(
        capsys, "device", "--kind", "door", "--location-id", "gate-1", "--broker", "mqtts://b",
        "--ca", pki.ca_cert, "--cert", other_cert, "--key", other_key, "--root", sd, "--force",
    )  # fmt: skip
    assert code == 2 and "qrc-0000cafe" in err and "qrc-0000beef" in err
    assert snapshot(sd) == before


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ("key-of-another", "does not belong"),
        ("plain-url", "need a TLS broker URL"),
        ("cert-without-key", "go together"),
        ("not-pem", "holds no PEM certificate"),
    ],
)
def test_wrong_tls_material_is_refused(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], mix: str, message: str
) -> None:
    pki = make_pki(tmp_path / "pki")
    cert, key = pki.client("qrc-00000001")
    _, other_key = pki.client("qrc-00000002")
    url = "mqtts://b"
    files: list[str | Path] = ["--ca", pki.ca_cert, "--cert", cert, "--key", key]
    if mix == "key-of-another":
        files[-1] = other_key
    elif mix == "plain-url":
        url = "mqtt://b"
    elif mix == "cert-without-key":
        files = files[:4]
    elif mix == "not-pem":
        files[1] = key
    before = snapshot(sd)
    code, _, err = provision(
        capsys, "device", "--kind", "door", "--location-id", "g", "--broker", url, *files, "--root", sd
    )
    assert code == 2 and message in err
    assert snapshot(sd) == before


def test_the_site_key_is_installed_and_a_short_one_refused(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = tmp_path / "short.key"
    short.write_text("tooshort\n")
    code, _, err = provision(capsys, *BUS, "--root", sd, "--site-key", short)
    assert code == 2 and "at least 16" in err
    assert not (sd / "etc/qr-checkin").exists()

    site = tmp_path / "site.key"
    site.write_text("a" * 64 + "\n")
    code, out, _ = provision(capsys, *BUS, "--root", sd, "--site-key", site)
    assert code == 0 and "generated a new site key" not in out
    assert (sd / "etc/qr-checkin/site.key").read_bytes() == site.read_bytes()


def test_a_password_login_is_written_for_the_device(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t-passw0rd\n")
    code, out, _ = provision(capsys, *BUS, "--root", sd, "--password-file", secret, "--insecure")
    assert code == 0
    settings = load_settings(config_of(sd))
    assert settings.broker.username == settings.device.id
    assert settings.broker.password is not None
    assert settings.broker.password.get_secret_value() == "s3cr3t-passw0rd"
    assert "s3cr3t" not in out


def test_check_config_names_an_unknown_key_in_a_provisioned_file(
    sd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert provision(capsys, *BUS, "--root", sd)[0] == 0
    config = config_of(sd)
    config.write_text(config.read_text().replace("[broker]\n", '[broker]\nhots = "typo"\n'))
    assert checkin_cli(["check-config", "--config", str(config)]) == 2
    assert "unknown key 'broker.hots'" in capsys.readouterr().err


def test_labels_without_segno_fail_before_writing_with_the_install_hint(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules is how Python itself marks a module as not importable.
    monkeypatch.setitem(sys.modules, "segno", None)
    before = snapshot(tmp_path)
    code, _, err = provision(capsys, *BUS, "--root", sd, "--label", tmp_path / "l.png")
    assert code == 2 and "pip install 'qr-checkin[label]'" in err
    assert snapshot(tmp_path) == before


def test_the_console_script_is_installed() -> None:
    script = ROOT / ".venv" / "bin" / "qr-provision"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "provisioning.cli"]
    result = subprocess.run([*command, "device", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--plate" in result.stdout


def test_a_pi_gets_a_serial_scanner_by_its_udev_link_and_gpio_feedback_by_default(
    sd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = provision(capsys, *BUS, "--root", sd)
    assert code == 0, err
    settings = load_settings(config_of(sd))
    assert settings.scanner.sources == ["serial"]
    assert settings.scanner.serial.port == "/dev/qr-scanner-serial"
    assert settings.feedback.backend == "gpio"
    gpio = settings.feedback.gpio
    assert (gpio.green, gpio.red, gpio.buzzer, gpio.buzzer_kind) == (17, 27, 22, "active")
    assert gpio.status is None and gpio.relay is None
    assert check_config(config_of(sd)).returncode == 0


def test_scanner_and_feedback_choices_are_written(sd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = provision(
        capsys, *BUS, "--root", sd, "--scanner", "hid", "--scanner", "camera", "--hid-device", "0c2e:0b61",
        "--hid-layout", "de", "--buzzer", "none", "--relay", "GPIO23", "--status-led", "24",
    )  # fmt: skip
    assert code == 0, err
    settings = load_settings(config_of(sd))
    assert settings.scanner.sources == ["hid", "camera"]
    assert (settings.scanner.hid.devices, settings.scanner.hid.layout) == (["0c2e:0b61"], "de")
    gpio = settings.feedback.gpio
    assert (gpio.green, gpio.red, gpio.buzzer, gpio.relay, gpio.status) == (17, 27, None, 23, 24)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--serial-port", "/dev/ttyACM0"), "is a kernel name, numbered in plug order"),
        (("--serial-port", "/dev/ttyUSB*"), "is a kernel name"),
        (("--scanner", "hid", "--hid-device", "/dev/input/event3"), "is a kernel name"),
        (("--hid-device", "0c2e:0b61"), "--hid-device and --hid-layout need --scanner hid"),
        (
            ("--scanner", "camera", "--serial-port", "/dev/qr-scanner-serial"),
            "--serial-port needs --scanner serial",
        ),
        (("--relay", "17"), "GPIO17 is wired to both green and relay"),
        (("--green", "40"), "--green GPIO40 does not exist"),
        (("--red", "none"), "green and red come as a pair"),
        (("--feedback", "console", "--buzzer", "22"), "GPIO pins need --feedback gpio"),
    ],
)
def test_bad_scanner_or_feedback_choices_are_refused_and_nothing_is_written(
    sd: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    before = snapshot(sd)
    code, _, err = provision(capsys, *BUS, "--root", sd, *extra)
    assert code == 2 and message in err, err
    assert snapshot(sd) == before


def test_console_feedback_is_written_with_a_warning_and_verify_refuses_it(
    sd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = provision(capsys, *BUS, "--root", sd, "--feedback", "console", "--scanner", "stdin")
    assert code == 0
    assert "feedback console shows nothing to a worker" in out and "scanner stdin reads nothing" in out
    settings = load_settings(config_of(sd))
    # What verify expects comes from this laptop's record: the SD card is in the Pi by then.
    expect = expectation(settings.device.id, None, None)
    assert (expect.feedback, expect.dev) == ("console", False)
    topic = f"checkin/v1/98C12345/{settings.device.id}/status"
    status = {
        "state": "online",
        "device_id": settings.device.id,
        "config_hash": settings.config_hash(),
        "scanners": {"stdin:stdin": "connected"},
    }
    verdict = judge(topic, json.dumps(status).encode(), expect)
    assert (
        not verdict.ok
        and "has no configured scanner connected (scanners: stdin:stdin connected)" in verdict.reason
    )
    status["scanners"] = {"serial:/dev/qr-scanner-serial": "connected"}
    verdict = judge(topic, json.dumps(status).encode(), expect)
    assert not verdict.ok and "answers on the console only" in verdict.reason
    # A development config may answer on the console and read stdin.
    bench = Expectation(expect.device_id, expect.config_hash, "98C12345", dev=True, feedback="console")
    status["scanners"] = {"stdin:stdin": "connected"}
    assert judge(topic, json.dumps(status).encode(), bench).ok


def test_a_password_over_plain_mqtt_is_refused_without_insecure(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t-passw0rd\n")
    before = snapshot(sd)
    code, _, err = provision(capsys, *BUS, "--root", sd, "--password-file", secret)
    assert code == 2 and "would cross the network in clear" in err and "--insecure" in err
    assert snapshot(sd) == before
    tls = ("device", "--kind", "door", "--location-id", "gate-1", "--broker", "mqtts://broker.example.com")
    assert provision(capsys, *tls, "--root", sd, "--password-file", secret)[0] == 0


def test_the_username_names_the_device_so_the_acl_grants_it(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("pw-of-bus-12\n")
    tls = ("device", "--kind", "door", "--location-id", "gate-1", "--broker", "mqtts://broker.example.com")
    login = ("--root", sd, "--password-file", secret)
    code, out, err = provision(capsys, *tls, *login, "--username", "bus-12")
    assert code == 0, err
    settings = load_settings(config_of(sd))
    assert settings.device.id == settings.broker.username == "bus-12"
    assert "user bus-12\n  topic write checkin/v1/gate-1/bus-12/events" in out

    before = snapshot(sd)
    code, _, err = provision(capsys, *tls, *login, "--username", "bus-13", "--force")
    assert code == 2 and "--username names device 'bus-13' but this root was provisioned as 'bus-12'" in err
    assert snapshot(sd) == before


@pytest.mark.parametrize(
    ("username", "with_password", "message"),
    [
        ("bus 12", True, "--username 'bus 12' is not topic-safe"),
        ("bus-12", False, "--username needs --password-file"),
    ],
)
def test_a_username_the_acl_would_refuse_is_refused(
    sd: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    username: str,
    with_password: bool,
    message: str,
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("pw\n")
    tls = ("device", "--kind", "door", "--location-id", "gate-1", "--broker", "mqtts://broker.example.com")
    password = ("--password-file", secret) if with_password else ()
    before = snapshot(sd)
    code, _, err = provision(capsys, *tls, "--root", sd, "--username", username, *password)
    assert code == 2 and message in err, err
    assert snapshot(sd) == before


def test_where_the_location_is_is_written_and_a_bad_field_refused(
    sd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    place = ("--address", "Thôn A", "--ward", "Xã Hương Gián", "--district", "Huyện Yên Dũng")
    code, _, err = provision(capsys, *BUS, "--root", sd, *place, "--province", "Bắc Giang")
    assert code == 0, err
    location = load_settings(config_of(sd)).location
    assert (location.address, location.ward, location.district, location.province) == (
        "Thôn A",
        "Xã Hương Gián",
        "Huyện Yên Dũng",
        "Bắc Giang",
    )
    before = snapshot(sd)
    for bad in (("--ward", "Xã\u2028A"), ("--province", "B" * 81), ("--address", "A" * 201)):
        code, _, err = provision(capsys, *BUS, "--root", sd, "--force", *bad)
        assert code == 2 and f"{bad[0][2:]} " in err and "printable characters" in err, err
    assert snapshot(sd) == before


def collector_public_key() -> str:
    return base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()


def test_a_collector_key_makes_mode_collector_and_the_card_gets_no_site_key(
    sd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = collector_public_key()
    code, out, err = provision(capsys, *BUS, "--root", sd, "--collector-public-key", key)
    assert code == 0, err
    privacy = load_settings(config_of(sd)).privacy
    assert (privacy.subject, privacy.collector_public_key) == ("collector", key)
    assert not (sd / "etc/qr-checkin/site.key").exists() and "site key" not in out
    assert check_config(config_of(sd)).returncode == 0


def test_re_provisioning_into_mode_collector_takes_the_site_key_off_the_card(
    sd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert provision(capsys, *BUS, "--root", sd)[0] == 0
    site_key = sd / "etc/qr-checkin/site.key"
    assert site_key.exists()
    before = snapshot(sd)
    key = ("--collector-public-key", collector_public_key())
    code, _, err = provision(capsys, *BUS, "--root", sd, *key)
    assert code == 2 and str(site_key) in err and "--force" in err
    assert snapshot(sd) == before
    code, out, err = provision(capsys, *BUS, "--root", sd, *key, "--force")
    assert code == 0, err
    assert not site_key.exists() and "removed the site key" in out
    assert load_settings(config_of(sd)).privacy.subject == "collector"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not base64!", "is not the base64 of a 32-byte X25519 public key"),
        (base64.b64encode(b"\x01" * 31).decode(), "is not the base64 of a 32-byte"),
    ],
)
def test_a_bad_collector_key_is_refused(
    sd: Path, capsys: pytest.CaptureFixture[str], key: str, message: str
) -> None:
    before = snapshot(sd)
    code, _, err = provision(capsys, *BUS, "--root", sd, "--collector-public-key", key)
    assert code == 2 and message in err
    assert snapshot(sd) == before


def test_a_site_key_with_a_collector_key_is_refused(
    sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.key"
    site.write_text("ab" * 32 + "\n")
    before = snapshot(sd)
    code, _, err = provision(
        capsys, *BUS, "--root", sd, "--site-key", site, "--collector-public-key", collector_public_key()
    )
    assert code == 2 and "the key belongs on the collector only" in err
    assert snapshot(sd) == before
