"""The device configuration as qr-provision writes it, and what a previous provisioning left behind.

Paths inside the file are the device's own (/etc/qr-checkin/...), whatever --root the bundle is
written under: the SD card is read by the Pi, not by the laptop.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from device import __version__
from device.settings import ADDRESS_FIELDS
from provisioning.broker_url import BrokerUrl
from provisioning.hardware import Hardware, feedback_section, scanner_section

ETC = PurePosixPath("/etc/qr-checkin")
CONFIG = ETC / "device.toml"
CA = ETC / "ca.crt"
CERT = ETC / "client.crt"
KEY = ETC / "client.key"
SITE_KEY = ETC / "site.key"
STATE_DIR = PurePosixPath("/var/lib/qr-checkin")


@dataclass(frozen=True, slots=True)
class Location:
    id: str
    kind: str
    name: str
    address: str = ""
    ward: str = ""
    district: str = ""
    province: str = ""


@dataclass(frozen=True, slots=True)
class BrokerAccess:
    url: BrokerUrl
    topic_prefix: str = "checkin"
    ca: bool = False
    client_cert: bool = False
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Previous:
    """What an earlier provisioning of the same root decided and must keep."""

    device_id: str | None
    username: str | None
    password: str | None


def render(
    device_id: str,
    location: Location,
    broker: BrokerAccess,
    hardware: Hardware,
    collector_public_key: str | None = None,
) -> str:
    lines = [
        f"# qr-checkin device configuration, written by qr-provision {__version__}.",
        "# Re-provisioning keeps the device id. Check it with: qr-checkin check-config --config <this file>",
        "",
        "[device]",
        f"id = {toml_string(device_id)}",
        "",
        "[location]",
        f"id = {toml_string(location.id)}",
        f"kind = {toml_string(location.kind)}",
        f"name = {toml_string(location.name)}",
        *(
            f"{field} = {toml_string(getattr(location, field))}"
            for field in ADDRESS_FIELDS
            if getattr(location, field)
        ),
        "",
        "[broker]",
        f"host = {toml_string(broker.url.host)}",
        f"port = {broker.url.port}",
        # v5: a publish the ACL refuses comes back as reason 0x87 instead of a silent "success".
        'protocol = "5"',
        f"topic_prefix = {toml_string(broker.topic_prefix)}",
        f"tls = {'true' if broker.url.tls else 'false'}",
    ]
    if broker.ca:
        lines.append(f"ca = {toml_string(str(CA))}")
    if broker.client_cert:
        lines += [f"cert = {toml_string(str(CERT))}", f"key = {toml_string(str(KEY))}"]
    if broker.username is not None:
        lines.append(f"username = {toml_string(broker.username)}")
    if broker.password is not None:
        lines.append(f"password = {toml_string(broker.password)}")
    lines += [
        "",
        "[storage]",
        f"dir = {toml_string(str(STATE_DIR))}",
        "",
        *table("scanner", scanner_section(hardware)),
        *table("feedback", feedback_section(hardware)),
        "[privacy]",
        *(
            [
                "# Subjects sealed to the site collector, which computes the site HMAC: this device",
                "# holds no key that turns a subject back into an ID number.",
                'subject = "collector"',
                f"collector_public_key = {toml_string(collector_public_key)}",
            ]
            if collector_public_key is not None
            else ['subject = "hmac"', f"key_file = {toml_string(str(SITE_KEY))}"]
        ),
        "",
    ]
    return "\n".join(lines)


def table(name: str, section: dict[str, Any]) -> list[str]:
    """A TOML table and its sub-tables, each followed by a blank line."""
    lines = [f"[{name}]"]
    nested = []
    for key, value in section.items():
        if isinstance(value, dict):
            nested += table(f"{name}.{key}", value)
        else:
            lines.append(f"{key} = {toml_value(value)}")
    return [*lines, "", *nested]


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def read_previous(config: Path) -> Previous | None:
    """The id (and broker login) an existing config holds; None when there is none or it is unreadable."""
    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    device = raw.get("device")
    broker = raw.get("broker")
    device_id = device.get("id") if isinstance(device, dict) else None
    username = broker.get("username") if isinstance(broker, dict) else None
    password = broker.get("password") if isinstance(broker, dict) else None
    return Previous(
        device_id=device_id if isinstance(device_id, str) else None,
        username=username if isinstance(username, str) else None,
        password=password if isinstance(password, str) else None,
    )


def toml_string(value: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
